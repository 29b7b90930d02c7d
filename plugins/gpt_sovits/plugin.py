"""Registers the ``gpt-sovits`` engine (entry point ``gpt-sovits`` in the ``voiceseal`` group).

The engine object is built on first use; importing this module imports neither torch nor the
networks. Settings come from ``VOICESEAL_GPT_SOVITS_*`` (see :mod:`.settings`); the device
defaults to the platform's.
"""

from __future__ import annotations

import importlib.util
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

import voiceseal
from voiceseal.contracts import ComponentContext, Register

if TYPE_CHECKING:
    from voiceseal_plugins.gpt_sovits.engine import GPTSoVITSEngine

NAME = "gpt-sovits"
_REQUIRED = ("torch", "transformers")


def engine_version() -> str:
    """The platform's version plus the model family this engine runs."""
    try:
        return f"{version('voiceseal')}+gpt-sovits-v2"
    except PackageNotFoundError:
        return "0+gpt-sovits-v2"


def build_engine(context: ComponentContext) -> GPTSoVITSEngine:
    from voiceseal_plugins.gpt_sovits.engine import GPTSoVITSEngine
    from voiceseal_plugins.gpt_sovits.settings import GPTSoVITSSettings

    settings = GPTSoVITSSettings(**dict(context.options.get("gpt_sovits", {})))
    return GPTSoVITSEngine(settings, device=context.device)


@voiceseal.hookimpl
def register_engines(register: Register) -> None:
    missing = [m for m in _REQUIRED if importlib.util.find_spec(m) is None]
    register(
        NAME,
        build_engine,
        version=engine_version(),
        description=(
            "GPT-SoVITS v2/v2Pro/v2ProPlus from the community's checkpoint files, unchanged "
            "(GPU or CPU); per-voice prompt cache, token-level streaming, LRU of loaded models, "
            "continuous batching of concurrent requests per GPT file"
        ),
        aliases=("gpt_sovits", "gptsovits"),
        unavailable=f"missing {', '.join(missing)} (pip install torch transformers)"
        if missing
        else None,
    )
