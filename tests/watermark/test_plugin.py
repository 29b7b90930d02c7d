"""Registration through pluggy: the built-in scheme and the audiowmark subprocess plugin."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from voiceseal.components import Components
from voiceseal.contracts import ComponentContext, Watermarker
from voiceseal.errors import ComponentUnavailable
from voiceseal.plugins import get_plugin_manager
from voiceseal_plugins import audiowmark
from voiceseal_plugins.watermark import plugin

Array = npt.NDArray[np.float32]


def components(tmp_path: Path, key: bytes) -> Components:
    pm = get_plugin_manager(load_entry_points=False, extra=[plugin, audiowmark])
    return Components(pm, ComponentContext(data_dir=tmp_path, watermark_key=key))


def test_patchwork_is_registered(
    tmp_path: Path, key: bytes, speech_10s: Array, payload: bytes
) -> None:
    comps = components(tmp_path, key)
    assert "patchwork" in comps.names("watermarkers")
    wm = comps.get("watermarkers", "patchwork")
    assert isinstance(wm, Watermarker)
    assert comps.get("watermarkers", "voiceseal-patchwork") is wm  # alias, one instance
    marked = wm.embed(speech_10s[: 3 * 16000], 16000, payload)
    found = wm.detect(marked, 16000)
    assert found is not None and found.payload == payload


def test_key_comes_from_the_context(tmp_path: Path, speech_10s: Array, payload: bytes) -> None:
    marked = (
        components(tmp_path, b"first")
        .get("watermarkers", "patchwork")
        .embed(speech_10s[: 3 * 16000], 16000, payload)
    )
    assert (
        components(tmp_path, b"second").get("watermarkers", "patchwork").detect(marked, 16000)
        is None
    )


def test_audiowmark_is_listed_even_when_missing(tmp_path: Path, key: bytes) -> None:
    comps = components(tmp_path, key)
    spec = comps.spec("watermarkers", "audiowmark")
    if shutil.which("audiowmark") is None:
        assert spec.unavailable == "audiowmark not found on PATH"
        assert "audiowmark" not in comps.names("watermarkers")
        with pytest.raises(ComponentUnavailable, match="not found on PATH"):
            comps.get("watermarkers", "audiowmark")
    else:
        assert spec.unavailable is None


@pytest.mark.skipif(shutil.which("audiowmark") is None, reason="audiowmark not found on PATH")
def test_audiowmark_round_trip(
    tmp_path: Path, key: bytes, make_speech: Callable[..., Array], payload: bytes
) -> None:
    wm = components(tmp_path, key).get("watermarkers", "audiowmark")
    clip = make_speech(30.0, seed=4)
    found = wm.detect(wm.embed(clip, 16000, payload), 16000)
    assert found is not None and found.payload == payload
    assert (
        components(tmp_path, b"other")
        .get("watermarkers", "audiowmark")
        .detect(wm.embed(clip, 16000, payload), 16000)
        is None
    )
