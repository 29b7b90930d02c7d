"""``voiceseal watermark``: embed a payload into a file, or look for one in many files.

Files are read with libsndfile (WAV, FLAC, OGG/Vorbis, MP3 among others). Detection mixes
multi-channel files down to mono and resamples rates the watermarker does not take to 16 kHz, as
an auditor's clip may come from anywhere; embedding refuses both, since it must not change the
audio beyond the mark. The key comes from the settings (``VOICESEAL_WATERMARK_KEY``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import numpy as np
import soundfile as sf
import soxr
import typer

from voiceseal.cli.context import get_context
from voiceseal.cli.output import fail, print_json_line
from voiceseal.contracts import Watermarker
from voiceseal.errors import VoiceSealError

app = typer.Typer(
    name="watermark", help="Embed and detect VoiceSeal watermarks.", no_args_is_help=True
)

#: Rate a clip is resampled to for detection when the watermarker does not take its own.
FALLBACK_RATE = 16000

WatermarkerOption = Annotated[
    str | None,
    typer.Option("--watermarker", "-w", help="Watermark scheme (default: from settings)."),
]


def _watermarker(ctx: typer.Context, name: str | None) -> Watermarker:
    try:
        return get_context(ctx).runtime.watermarker(name)
    except VoiceSealError as exc:
        raise fail(exc.message) from None


def _read(path: Path) -> tuple[np.ndarray, int, Any]:
    """Samples (frames, channels) as float32, the rate, and the file's sub-type."""
    try:
        info = sf.info(str(path))
        audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise ValueError(f"cannot read {path}: {' '.join(str(exc).split())}") from None
    return audio, int(rate), info.subtype


def _parse_payload(text: str, size: int) -> bytes:
    digits = text.lower().removeprefix("0x")
    try:
        payload = bytes.fromhex(digits)
    except ValueError:
        raise fail(f"--payload must be hexadecimal, got {text!r}") from None
    if len(payload) != size:
        raise fail(f"--payload must be {2 * size} hex digits ({8 * size} bits), got {len(digits)}")
    return payload


@app.command("embed")
def embed(
    ctx: typer.Context,
    input_file: Annotated[Path, typer.Argument(metavar="IN", help="Audio file to mark.")],
    output_file: Annotated[
        Path, typer.Argument(metavar="OUT", help="Where to write the marked audio.")
    ],
    payload: Annotated[str, typer.Option("--payload", help="Payload as hex, e.g. 0a1b2c3d.")],
    watermarker: WatermarkerOption = None,
) -> None:
    """Write a copy of IN carrying PAYLOAD to OUT (same rate; WAV/FLAC/OGG by OUT's suffix)."""
    wm = _watermarker(ctx, watermarker)
    data = _parse_payload(payload, wm.payload_bits // 8)
    try:
        audio, rate, subtype = _read(input_file)
    except ValueError as exc:
        raise fail(str(exc)) from None
    if audio.shape[1] != 1:
        raise fail(
            f"{input_file} has {audio.shape[1]} channels; the watermark is mono: mix it down first"
        )
    try:
        marked = wm.embed(audio[:, 0], rate, data)
    except VoiceSealError as exc:
        raise fail(f"{input_file}: {exc.message}") from None
    try:
        # Keep the input's sample format where the output container allows it.
        fmt = output_file.suffix.lstrip(".").upper() or "WAV"
        sf.write(
            str(output_file),
            marked,
            rate,
            subtype=subtype if sf.check_format(fmt, subtype) else None,
        )
    except (sf.LibsndfileError, RuntimeError, OSError, ValueError, TypeError) as exc:
        raise fail(f"cannot write {output_file}: {' '.join(str(exc).split())}") from None
    typer.echo(f"{output_file}: marked with payload {data.hex()} ({wm.name})")


@app.command("detect")
def detect(
    ctx: typer.Context,
    files: Annotated[list[Path], typer.Argument(metavar="FILE", help="Audio files to examine.")],
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object per line per file.")
    ] = False,
    watermarker: WatermarkerOption = None,
) -> None:
    """Look for a watermark in each FILE; exit 0 when every file could be read, else 1."""
    wm = _watermarker(ctx, watermarker)
    failed = 0
    for path in files:
        try:
            audio, rate, _ = _read(path)
            mono = audio.mean(axis=1)
            if rate not in wm.capabilities.sample_rates:
                mono = soxr.resample(mono, rate, FALLBACK_RATE).astype(np.float32)
                rate = FALLBACK_RATE
            found = wm.detect(mono, rate)
        except (ValueError, VoiceSealError) as exc:
            failed += 1
            # Read errors name the file already; the watermarker's do not.
            message = f"{path}: {exc.message}" if isinstance(exc, VoiceSealError) else str(exc)
            if as_json:
                print_json_line({"file": str(path), "detected": None, "error": message})
            typer.echo(f"error: {message}", err=True)
            continue
        if as_json:
            print_json_line(
                {
                    "file": str(path),
                    "detected": found is not None,
                    "payload": found.payload.hex() if found else None,
                    "confidence": found.confidence if found else None,
                    "offset_seconds": round(found.offset_seconds, 4) if found else None,
                    "scheme": wm.name,
                }
            )
        elif found is None:
            typer.echo(f"{path}: no watermark")
        else:
            typer.echo(
                f"{path}: payload {found.payload.hex()} (confidence {found.confidence:.6f}, "
                f"offset {found.offset_seconds:.3f} s)"
            )
    if failed:
        raise typer.Exit(1)
