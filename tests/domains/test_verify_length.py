"""How long an output is padded (with room tone) so that its watermark check can pass."""

from __future__ import annotations

import pytest

from voiceseal.orchestrator import verify_seconds


@pytest.mark.parametrize(
    ("extra", "seconds"),
    [
        ({"min_detect_seconds": 1.0, "verify_seconds": 2.5}, 2.5),  # patchwork's
        ({"min_detect_seconds": 1.5}, 2.5),  # no verify_seconds: one second over the minimum
        ({}, 0.0),  # a watermarker that reads any length
        ({"min_detect_seconds": 1.0, "verify_seconds": 0.5}, 1.0),  # never below the minimum
        ({"min_detect_seconds": 1.0, "verify_seconds": 0}, 1.0),
        ({"verify_seconds": 3}, 3.0),
        ({"min_detect_seconds": 1.0, "verify_seconds": float("nan")}, 2.0),  # not a length
        ({"min_detect_seconds": 1.0, "verify_seconds": "soon"}, 2.0),
        ({"min_detect_seconds": float("inf")}, 0.0),
        ({"min_detect_seconds": -1.0, "verify_seconds": -2.0}, 0.0),
    ],
)
def test_verify_seconds(extra: dict[str, object], seconds: float) -> None:
    assert verify_seconds(extra) == seconds


def test_the_built_in_watermark_pads_to_its_own_verify_length() -> None:
    from voiceseal_plugins.watermark import detect
    from voiceseal_plugins.watermark.scheme import PatchworkWatermarker

    extra = PatchworkWatermarker(b"k" * 32).capabilities.extra
    assert verify_seconds(extra) == detect.VERIFY_SECONDS >= detect.MIN_SECONDS
