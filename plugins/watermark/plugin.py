"""Registers the ``patchwork`` watermarker (entry point ``watermark`` in the ``voiceseal`` group)."""

from __future__ import annotations

from voiceseal import hookimpl
from voiceseal.contracts import ComponentContext, Register
from voiceseal_plugins.watermark.scheme import NAME, VERSION, PatchworkWatermarker


def _build(context: ComponentContext) -> PatchworkWatermarker:
    return PatchworkWatermarker(context.watermark_key)


@hookimpl
def register_watermarkers(register: Register) -> None:
    register(
        NAME,
        _build,
        version=VERSION,
        description="keyed spectral patchwork, 32-bit payload, streaming, blind detection with speed search",
        aliases=("voiceseal-patchwork",),
    )
