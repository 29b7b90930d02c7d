"""Speed, intelligibility and voice similarity of the ``reference`` engine.

Usage (from the repository root)::

    .venv/bin/python bench/reference_engine.py                   # full run (~5 min on 2 cores)
    .venv/bin/python bench/reference_engine.py --json out.json   # also write every figure
    .venv/bin/python bench/reference_engine.py --compare-kokoro  # add the Piper-vs-Kokoro table
    .venv/bin/python bench/reference_engine.py --targets joe-deep,kokoro-alpha --sentences 10
                                                                 # a quick subset while iterating

What is measured, on one CPU core (``OMP_NUM_THREADS=1``, onnxruntime intra-op threads 1):

- real-time factor (compute seconds per second of audio) of stage 1, the bundled Piper voice, and of
  stage 2, the WORLD timbre transfer, over 20 Harvard sentences. The table gives CPU time of the
  process (everything runs on one thread), which a busy machine does not inflate; the JSON also has
  wall-clock figures;
- word error rate of the engine's output on those 20 sentences, transcribed by the bundled Whisper
  tiny.en (faster-whisper, int8), for the bare Piper voice and for every target voice;
- resemblyzer cosine similarity between each target voice's fingerprint (the centroid of its two
  reference clips, as the registry stores it) and the engine's output, before (bare Piper voice)
  and after timbre transfer, over the 8 sample voices other than the Piper voice itself.

Sample clips and the engine's source profile are cached under ``data/bench/`` (ignored by git).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np

from voiceseal.contracts import ReferenceClip, VoiceAssets
from voiceseal_plugins.reference_engine.engine import ReferenceEngine
from voiceseal_plugins.reference_engine.samples import SAMPLE_VOICES, SampleKit
from voiceseal_plugins.resemblyzer_encoder import ResemblyzerEncoder
from voiceseal_plugins.whisper_transcriber import (
    WhisperTranscriber,
    word_error_rate,
)

CACHE = Path("data/bench")
#: Harvard sentences (lists 1–2), none used by the engine's calibration or the sample clips'
#: first two takes; the engine never saw any of them as a target.
SENTENCES = (
    "The birch canoe slid on the smooth planks.",
    "Glue the sheet to the dark blue background.",
    "It is easy to tell the depth of a well.",
    "These days a chicken leg is a rare dish.",
    "Rice is often served in round bowls.",
    "The juice of lemons makes fine punch.",
    "The box was thrown beside the parked truck.",
    "The hogs were fed chopped corn and garbage.",
    "Four hours of steady work faced us.",
    "A large size in stockings is hard to sell.",
    "The boy was there when the sun rose.",
    "A rod is used to catch pink salmon.",
    "The source of the huge river is the clear spring.",
    "Kick the ball straight and follow through.",
    "Help the woman get back to her feet.",
    "A pot of tea helps to pass the evening.",
    "Smoky fires lack flame and heat.",
    "The soft cushion broke the man's fall.",
    "The salt breeze came across from the sea.",
    "The girl at the booth sold fifty bonds.",
)
TARGETS = tuple(v for v in SAMPLE_VOICES if v != "joe")
REFERENCE_TAKES = (0, 1)
WER_TARGET = 0.10
SIMILARITY_GAIN_TARGET = 0.10


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, help="also write every figure to this JSON file")
    parser.add_argument("--compare-kokoro", action="store_true", help="measure Kokoro-82M too")
    parser.add_argument(
        "--targets",
        type=_target_list,
        default=TARGETS,
        help=f"comma-separated target voices (default: all {len(TARGETS)})",
    )
    parser.add_argument(
        "--sentences",
        type=int,
        default=len(SENTENCES),
        choices=range(1, len(SENTENCES) + 1),
        metavar=f"1..{len(SENTENCES)}",
        help="use only the first N sentences",
    )
    args = parser.parse_args(argv)
    sentences = SENTENCES[: args.sentences]

    kit = SampleKit(CACHE, threads=1)
    engine = ReferenceEngine(CACHE, threads=1)
    encoder = ResemblyzerEncoder()
    transcriber = WhisperTranscriber(threads=1)
    _ = engine.source_profile  # measured (or loaded) once, outside every timing

    # Stage 1 once per sentence: the bare voice is shared by every target.
    engine.speak("Warm up.")
    bare: list[np.ndarray[Any, Any]] = []
    synth_seconds = 0.0
    synth_wall = 0.0
    for sentence in sentences:
        start, cpu = time.perf_counter(), time.process_time()
        bare.append(engine.speak(sentence))
        synth_seconds += time.process_time() - cpu
        synth_wall += time.perf_counter() - start
    audio_seconds = sum(a.size for a in bare) / engine.capabilities.sample_rates[0]
    rate = engine.capabilities.sample_rates[0]
    bare_wer = _wer(transcriber, sentences, bare, rate)
    bare_vectors = [encoder.embed(a, rate) for a in bare]

    rows: list[dict[str, Any]] = []
    transfer_seconds = 0.0
    transfer_wall = 0.0
    transfer_audio = 0.0
    for name in args.targets:
        clips = [kit.clip(name, take=t) for t in REFERENCE_TAKES]
        fingerprint = _centroid([encoder.embed(c.audio, c.sample_rate) for c in clips])
        start = time.perf_counter()
        handle = engine.prepare_voice(
            VoiceAssets(
                voice_id=name,
                references=tuple(
                    ReferenceClip(c.audio, c.sample_rate, c.transcript) for c in clips
                ),
            )
        )
        prepare_seconds = time.perf_counter() - start
        outputs = []
        for audio in bare:
            start, cpu = time.perf_counter(), time.process_time()
            outputs.append(engine.transfer(audio, handle.state))
            transfer_seconds += time.process_time() - cpu
            transfer_wall += time.perf_counter() - start
            transfer_audio += audio.size / rate
        before = float(np.mean([v @ fingerprint for v in bare_vectors]))
        after = float(np.mean([encoder.embed(o, rate) @ fingerprint for o in outputs]))
        plan = handle.state
        rows.append(
            {
                "target": name,
                "target_f0_hz": round(float(np.exp(plan.target_logf0[0])), 1),
                "warp": plan.warp,
                "prepare_seconds": round(prepare_seconds, 2),
                "similarity_before": round(before, 4),
                "similarity_after": round(after, 4),
                "gain": round(after - before, 4),
                "wer": round(_wer(transcriber, sentences, outputs, rate), 4),
            }
        )
        print(f"  {name}: done", file=sys.stderr, flush=True)

    results: dict[str, Any] = {
        "engine_version": engine.version,
        "sentences": len(sentences),
        "audio_seconds": round(audio_seconds, 2),
        "rtf_synthesis_1core": round(synth_seconds / audio_seconds, 4),
        "rtf_transfer_1core": round(transfer_seconds / transfer_audio, 4),
        "rtf_synthesis_wall": round(synth_wall / audio_seconds, 4),
        "rtf_transfer_wall": round(transfer_wall / transfer_audio, 4),
        "wer_bare": round(bare_wer, 4),
        "wer_after_transfer_mean": round(float(np.mean([r["wer"] for r in rows])), 4),
        "wer_after_transfer_max": round(float(np.max([r["wer"] for r in rows])), 4),
        "similarity_before_mean": round(float(np.mean([r["similarity_before"] for r in rows])), 4),
        "similarity_after_mean": round(float(np.mean([r["similarity_after"] for r in rows])), 4),
        "targets": rows,
    }
    results["similarity_gain_mean"] = round(
        results["similarity_after_mean"] - results["similarity_before_mean"], 4
    )
    if args.compare_kokoro:
        results["kokoro"] = _compare_kokoro(kit, transcriber)
    _print(results)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))
    return 0


def _target_list(value: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in value.split(",") if n.strip())
    unknown = [n for n in names if n not in TARGETS]
    if not names or unknown:
        raise argparse.ArgumentTypeError(
            f"unknown target voice(s) {', '.join(unknown) or '(none given)'}; "
            f"choose from {', '.join(TARGETS)}"
        )
    return names


def _wer(
    transcriber: WhisperTranscriber,
    sentences: tuple[str, ...],
    clips: list[np.ndarray[Any, Any]],
    rate: int,
) -> float:
    """Corpus WER: word edits summed over sentences, over reference words summed."""
    from voiceseal_plugins.whisper_transcriber import normalise_words

    errors = 0.0
    words = 0
    for sentence, audio in zip(sentences, clips, strict=True):
        n = len(normalise_words(sentence))
        errors += word_error_rate(sentence, transcriber.transcribe(audio, rate, "en").text) * n
        words += n
    return errors / words


def _centroid(vectors: list[np.ndarray[Any, Any]]) -> np.ndarray[Any, Any]:
    mean = np.mean(vectors, axis=0)
    return mean / np.linalg.norm(mean)


def _compare_kokoro(kit: SampleKit, transcriber: WhisperTranscriber) -> list[dict[str, Any]]:
    """Kokoro-82M (two of its styles) against the same sentences: speed and WER, one core."""
    from voiceseal_plugins.reference_engine.kokoro_voice import SAMPLE_RATE, KokoroSpeaker
    from voiceseal_plugins.reference_engine.piper_voice import PiperSpeaker

    piper = PiperSpeaker(threads=1)
    kokoro = KokoroSpeaker(kit.cache_dir / "models", piper.phonemize, threads=1)
    rows = []
    for style in ("jm_kumo", "jf_alpha"):
        kokoro.speak("Warm up.", style)
        clips = []
        seconds = 0.0
        for sentence in SENTENCES:
            cpu = time.process_time()
            clips.append(kokoro.speak(sentence, style))
            seconds += time.process_time() - cpu
        duration = sum(c.size for c in clips) / SAMPLE_RATE
        rows.append(
            {
                "style": style,
                "rtf_1core": round(seconds / duration, 4),
                "wer": round(_wer(transcriber, SENTENCES, clips, SAMPLE_RATE), 4),
            }
        )
    return rows


def _print(r: dict[str, Any]) -> None:
    print(f"reference engine — {r['engine_version']}")
    print(
        f"{r['sentences']} sentences, {r['audio_seconds']} s of speech; "
        "RTF = CPU seconds per audio second, one thread\n"
    )
    print("| measure | value | target |")
    print("|---|---|---|")
    print(f"| RTF, synthesis (Piper) | {r['rtf_synthesis_1core']:.3f} | |")
    print(f"| RTF, timbre transfer (WORLD) | {r['rtf_transfer_1core']:.3f} | |")
    total = r["rtf_synthesis_1core"] + r["rtf_transfer_1core"]
    print(f"| RTF, total | {total:.3f} | < 1 |")
    print(f"| WER, bare Piper voice | {100 * r['wer_bare']:.1f}% | ≤ {100 * WER_TARGET:.0f}% |")
    print(
        f"| WER, after transfer (mean / worst of {len(r['targets'])} voices) | "
        f"{100 * r['wer_after_transfer_mean']:.1f}% / {100 * r['wer_after_transfer_max']:.1f}% | "
        f"≤ {100 * WER_TARGET:.0f}% |"
    )
    print(
        f"| speaker similarity before → after (mean) | {r['similarity_before_mean']:.3f} → "
        f"{r['similarity_after_mean']:.3f} (+{r['similarity_gain_mean']:.3f}) | "
        f"+{SIMILARITY_GAIN_TARGET:.2f} |\n"
    )
    print("| target voice | F0 (Hz) | warp | before | after | gain | WER |")
    print("|---|---|---|---|---|---|---|")
    for t in r["targets"]:
        print(
            f"| {t['target']} | {t['target_f0_hz']:.0f} | {t['warp']:.3f} | "
            f"{t['similarity_before']:.3f} | {t['similarity_after']:.3f} | {t['gain']:+.3f} | "
            f"{100 * t['wer']:.1f}% |"
        )
    if "kokoro" in r:
        print("\n| Kokoro-82M style (English via espeak-ng IPA) | RTF, one core | WER |")
        print("|---|---|---|")
        for k in r["kokoro"]:
            print(f"| {k['style']} | {k['rtf_1core']:.3f} | {100 * k['wer']:.1f}% |")


if __name__ == "__main__":
    raise SystemExit(main())
