"""The one exception type of the GPT-SoVITS text front end."""

from __future__ import annotations


class TextFrontendError(ValueError):
    """Text that the front end cannot turn into phones, or a missing optional package.

    The message always names the offending input (or package) so that an API caller can show it
    to a person unchanged.
    """
