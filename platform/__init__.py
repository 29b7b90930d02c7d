"""VoiceSeal core: contracts, registry, pipeline, API and CLI. Knows no backend by name."""

from __future__ import annotations

import sys

if __name__ == "platform":  # pragma: no cover - only when the repo root is on sys.path
    # This folder is the package `voiceseal`; reached as `platform` it would shadow the standard
    # library module that half the ecosystem imports. Put the real one in its place and stop.
    import importlib.util
    import os
    import sysconfig

    _spec = importlib.util.spec_from_file_location(
        "platform", os.path.join(sysconfig.get_paths()["stdlib"], "platform.py")
    )
    assert _spec is not None and _spec.loader is not None
    _std = importlib.util.module_from_spec(_spec)
    sys.modules["platform"] = _std
    _spec.loader.exec_module(_std)
else:
    import pluggy

    __version__ = "0.1.0"

    #: Marker for plugin authors: decorate hook implementations with ``@voiceseal.hookimpl``.
    hookimpl = pluggy.HookimplMarker("voiceseal")

    __all__ = ["__version__", "hookimpl"]
