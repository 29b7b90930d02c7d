"""Exceptions raised while reading GPT-SoVITS weight files.

They live in their own module so that the low-level archive reader and the format logic in
`checkpoint` can share them; `checkpoint` re-exports both.
"""

from __future__ import annotations


class CheckpointError(ValueError):
    """A file is not a usable GPT-SoVITS checkpoint (corrupt, truncated, unsafe, mismatched)."""


class UnsupportedCheckpointError(CheckpointError):
    """A well-formed official file of a kind this engine does not run yet (v1, v3, v4, LoRA)."""
