"""A process's runtime: settings, plugin manager and components, built once per app or CLI call.

Nothing here is module-level state: the API keeps its runtime in the lifespan state, the CLI builds
one per command, tests build their own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from voiceseal.components import Components
from voiceseal.contracts import (
    ComponentContext,
    Engine,
    SpeakerEncoder,
    Transcriber,
    Watermarker,
)
from voiceseal.plugins import PluginManager, get_plugin_manager
from voiceseal.settings import Settings
from voiceseal.voices.handles import HandleCache


@dataclass
class Runtime:
    settings: Settings
    pm: PluginManager
    components: Components
    #: Prepared voices of this process, least recently used out.
    handles: HandleCache = field(default_factory=HandleCache)

    def engine(self, name: str | None = None) -> Engine:
        return self.components.get("engines", name or self.settings.default_engine)

    def watermarker(self, name: str | None = None) -> Watermarker:
        return self.components.get("watermarkers", name or self.settings.default_watermarker)

    def speaker_encoder(self, name: str | None = None) -> SpeakerEncoder:
        return self.components.get(
            "speaker_encoders", name or self.settings.default_speaker_encoder
        )

    def transcriber(self, name: str | None = None) -> Transcriber:
        return self.components.get("transcribers", name or self.settings.default_transcriber)


def build_runtime(
    settings: Settings | None = None,
    *,
    extra_plugins: list[Any] | None = None,
    load_entry_points: bool = True,
    components: Components | None = None,
) -> Runtime:
    """Build a runtime. ``components`` shares already-loaded models between runtimes of one
    process (several apps, or a test session); their watermark key must be the settings' key."""
    settings = settings or Settings()
    if components is not None:
        if components.context.watermark_key != settings.watermark_key_bytes:
            raise ValueError("shared components were built with a different watermark key")
        return Runtime(settings, components.pm, components)
    pm = get_plugin_manager(load_entry_points=load_entry_points, extra=extra_plugins)
    ctx = ComponentContext(
        data_dir=settings.data_dir,
        device=settings.device,
        watermark_key=settings.watermark_key_bytes,
    )
    return Runtime(settings, pm, Components(pm, ctx))
