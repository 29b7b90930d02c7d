"""``voiceseal watermark embed|detect`` through typer's runner, with a real runtime."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import soundfile as sf
from typer.testing import CliRunner

from voiceseal.cli.context import CliContext
from voiceseal.cli.watermark_cmd import app
from voiceseal.runtime import build_runtime
from voiceseal.settings import Settings
from voiceseal_plugins.watermark import plugin

Array = npt.NDArray[np.float32]


@pytest.fixture
def cli(tmp_path: Path) -> CliContext:
    settings = Settings(data_dir=tmp_path / "data", watermark_key="cli-test-key")  # type: ignore[arg-type]
    context = CliContext(settings)
    # The real runtime, with the watermark plugin given directly instead of by entry point.
    context.runtime = build_runtime(settings, extra_plugins=[plugin], load_entry_points=False)
    return context


@pytest.fixture
def clip(tmp_path: Path, speech_10s: Array) -> Path:
    path = tmp_path / "clip.wav"
    sf.write(path, speech_10s[: 4 * 16000], 16000, subtype="PCM_16")
    return path


def invoke(cli: CliContext, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), obj=cli)
    return result.exit_code, result.stdout, result.stderr


def test_embed_then_detect(cli: CliContext, clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "marked.wav"
    code, stdout, _ = invoke(cli, "embed", str(clip), str(out), "--payload", "0A1B2C3D")
    assert code == 0, stdout
    assert "0a1b2c3d" in stdout
    assert sf.info(str(out)).subtype == "PCM_16" and sf.info(str(out)).samplerate == 16000
    code, stdout, _ = invoke(cli, "detect", str(out), str(clip))
    assert code == 0
    lines = stdout.strip().splitlines()
    assert "payload 0a1b2c3d" in lines[0]
    assert lines[1].endswith("no watermark")


def test_detect_json_many_files(cli: CliContext, clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "marked.flac"
    assert invoke(cli, "embed", str(clip), str(out), "--payload", "deadbeef")[0] == 0
    stereo = tmp_path / "stereo.wav"
    data, rate = sf.read(out)
    sf.write(stereo, np.stack([data, data], axis=1), rate)
    code, stdout, _ = invoke(cli, "detect", "--json", str(out), str(clip), str(stereo))
    assert code == 0
    rows = [json.loads(line) for line in stdout.strip().splitlines()]
    assert [r["file"] for r in rows] == [str(out), str(clip), str(stereo)]
    assert rows[0]["detected"] is True and rows[0]["payload"] == "deadbeef"
    assert rows[0]["confidence"] > 0.999999 and abs(rows[0]["offset_seconds"]) < 0.01
    assert rows[1] == {
        "file": str(clip),
        "detected": False,
        "payload": None,
        "confidence": None,
        "offset_seconds": None,
        "scheme": "patchwork",
    }
    assert rows[2]["payload"] == "deadbeef"  # stereo is mixed down for detection


def test_unreadable_file_fails_with_one_line(cli: CliContext, clip: Path, tmp_path: Path) -> None:
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"not audio at all")
    code, stdout, stderr = invoke(
        cli, "detect", str(junk), str(clip), str(tmp_path / "missing.wav")
    )
    assert code == 1
    errors = stderr.strip().splitlines()
    assert len(errors) == 2
    assert errors[0].startswith(f"error: cannot read {junk}")
    assert str(tmp_path / "missing.wav") in errors[1]
    assert stdout.strip().endswith("no watermark")  # the readable file is still examined


def test_json_reports_errors_per_file(cli: CliContext, tmp_path: Path) -> None:
    short = tmp_path / "short.wav"
    sf.write(short, np.zeros(8000, dtype=np.float32), 16000)
    code, stdout, stderr = invoke(cli, "detect", "--json", str(short))
    assert code == 1
    row = json.loads(stdout)
    assert row["detected"] is None and "too short" in row["error"]
    assert "too short" in stderr


@pytest.mark.parametrize(
    ("payload", "message"), [("xyz", "hexadecimal"), ("0a1b2c", "8 hex digits")]
)
def test_bad_payload(
    cli: CliContext, clip: Path, tmp_path: Path, payload: str, message: str
) -> None:
    code, _, stderr = invoke(cli, "embed", str(clip), str(tmp_path / "o.wav"), "--payload", payload)
    assert code == 1 and message in stderr and len(stderr.strip().splitlines()) == 1


def test_embed_refuses_stereo_and_unknown_scheme(
    cli: CliContext, clip: Path, tmp_path: Path
) -> None:
    stereo = tmp_path / "stereo.wav"
    data, rate = sf.read(clip)
    sf.write(stereo, np.stack([data, data], axis=1), rate)
    code, _, stderr = invoke(
        cli, "embed", str(stereo), str(tmp_path / "o.wav"), "--payload", "00000000"
    )
    assert code == 1 and "mix it down" in stderr
    code, _, stderr = invoke(cli, "detect", "--watermarker", "nope", str(clip))
    assert code == 1 and "no watermarker named 'nope'" in stderr
