"""Calibrate the speaker-similarity thresholds on the sample voices.

Usage (from the repository root)::

    .venv/bin/python bench/calibrate_speakers.py                 # table (~5 min on 2 cores, cold)
    .venv/bin/python bench/calibrate_speakers.py --json out.json # also write every figure

Every figure is a resemblyzer cosine similarity; a trial is *genuine* when both sides are the same
speaker and *impostor* otherwise. A check accepts (calls it "the same speaker") when the similarity
is at or above its threshold, so FAR is the share of impostor trials at or above the threshold and
FRR the share of genuine trials below it. The trials follow the platform's own comparisons:

- ``clips``: every pair of clips (8 per voice: the 4 sample takes and 4 other sentences read by
  the same voice), in three sets: all 10 sample voices; the distinct voices only (the Piper voice
  and the 5 Kokoro styles); and the Piper family alone (joe and its 4 WORLD pitch/formant shifts,
  near-duplicates by construction: the hard case);
- ``consent``: a recording of a consent statement by speaker X against the reference clip of
  speaker Y, as ``POST /v1/audio/voices`` compares them (``same_speaker_threshold``);
- ``enrolment1`` and ``enrolment2``: a new registration's reference against a protected or
  already-registered voice, as the protected-voice and other-speaker checks at enrolment compare
  them (today at ``same_speaker_threshold``): with one clip on each side (takes 1–3 against take
  0, as the demo and the tests register voices) and with two-clip centroids (takes 0–1 against
  2–3);
- ``output``: the reference engine's output for voice X against X's centroid (genuine) and the
  other voices' centroids (impostor), as the orchestrator's ``output_match_threshold`` check does;
- ``protected``: the engine's output for voice X against a protected voice Y's centroid (made
  from other clips, takes 2–3), and the orchestrator's full blocking rule (similarity to Y at or
  above ``same_speaker_threshold`` and above the similarity to the requested voice's own centroid
  plus the margin) in three scenarios: an ordinary output (must pass), an output whose own voice
  is the protected speaker, and an output that speaks like protected Y while the request names
  another voice (must be blocked; see ``_protected_rule``).

Every case prints FAR/FRR over a sweep of thresholds, the hardest impostor pairs and histograms;
the proposal at the end says which error each threshold trades.

The sample voices are synthetic (see ``voiceseal_plugins.reference_engine.samples``): the figures
rank thresholds against each other; they are no estimate of error rates on recordings of people.
Generated clips are cached under ``data/bench/`` (ignored by git).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np
import numpy.typing as npt

from voiceseal.consents.statement import build_statement
from voiceseal.contracts import ReferenceClip, VoiceAssets
from voiceseal.settings import Settings
from voiceseal_plugins.reference_engine.engine import ReferenceEngine
from voiceseal_plugins.reference_engine.piper_voice import SAMPLE_RATE as ENGINE_RATE
from voiceseal_plugins.reference_engine.samples import KIT_VERSION, SAMPLE_VOICES, TAKES, SampleKit
from voiceseal_plugins.resemblyzer_encoder import ResemblyzerEncoder

Vec = npt.NDArray[np.float32]
CACHE = Path("data/bench")

PIPER_FAMILY = ("joe", "joe-deep", "joe-bright", "alto", "joe-high")
DISTINCT = (
    "joe",
    "kokoro-alpha",
    "kokoro-gongitsune",
    "kokoro-nezumi",
    "kokoro-tebukuro",
    "kokoro-kumo",
)
#: Harvard list 3, used by neither the sample takes, the engine's calibration text nor the other
#: benches: each voice reads them in addition to its 4 takes.
EXTRA_SENTENCES = (
    "The small pup gnawed a hole in the sock. The fish twisted and turned on the bent hook.",
    "Press the pants and sew a button on the vest. The swan dive was far short of perfect.",
    "The beauty of the view stunned the young boy. Two blue fish swam in the tank.",
    "Her purse was full of useless trash. The colt reared and threw the tall rider.",
)
#: Fixed nonces: the statements must be the same on every run so the cached recordings fit.
CONSENT_NONCES = ("4 7 2 9, 1 5 0 3", "8 0 6 1, 3 9 4 2")
#: What the engine says for the output checks (Harvard list 4).
OUTPUT_SENTENCES = (
    "It snowed, rained, and hailed the same morning. Read verse out loud for pleasure.",
    "Hoist the load to your left shoulder. Take the winding path to reach the lake.",
    "Note closely the size of the gas tank. Wipe the grease off his dirty face.",
)
REFERENCE_TAKES = (0, 1)
PROTECTED_TAKES = (2, 3)
SWEEP = (0.5, 0.55, 0.6, 0.75, 0.8, 0.85, 0.88, 0.9, 0.92, 0.94)
#: Thresholds the generation-time blocking rule is evaluated at (plus the proposed one).
RULE_THRESHOLDS = (0.75, 0.85, 0.92)
SWEEP_LABELS = tuple(f"{t:.2f}" for t in SWEEP)
HISTOGRAM_EDGES = np.round(np.arange(0.0, 1.0001, 0.05), 2)


@dataclass(frozen=True)
class Trials:
    """Similarities of one comparison, split by whether both sides are the same speaker."""

    genuine: npt.NDArray[np.float64]
    impostor: npt.NDArray[np.float64]
    #: (probe voice, model voice) of each impostor score, to name the hardest pairs.
    impostor_pairs: tuple[tuple[str, str], ...]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, help="also write every figure to this JSON file")
    parser.add_argument("--cache", type=Path, default=CACHE, help="clip cache folder")
    args = parser.parse_args(argv)
    settings = Settings(environment="test", data_dir=args.cache)
    configured = {
        "same_speaker_threshold": settings.same_speaker_threshold,
        "output_match_threshold": settings.output_match_threshold,
        # No setting of its own yet: the enrolment and generation protected-voice checks and the
        # other-speaker check use same_speaker_threshold today (see the proposal).
        "protected_match_threshold": settings.same_speaker_threshold,
        "protected_margin": settings.protected_margin,
    }
    started = time.perf_counter()
    kit = SampleKit(args.cache, threads=1)
    encoder = ResemblyzerEncoder()

    _log("sample clips and their embeddings")
    clip_vecs: dict[str, list[Vec]] = {}
    for voice in SAMPLE_VOICES:
        vecs = [_embed(encoder, *kit.clip(voice, take=t)[:2]) for t in range(TAKES)]
        for text in EXTRA_SENTENCES:
            vecs.append(_embed(encoder, *_spoken(kit, voice, text)))
        clip_vecs[voice] = vecs

    _log("consent recordings")
    consent_vecs = {
        voice: [
            _embed(encoder, *_spoken(kit, voice, _statement(nonce))) for nonce in CONSENT_NONCES
        ]
        for voice in SAMPLE_VOICES
    }
    reference = {v: _centroid([clip_vecs[v][t] for t in REFERENCE_TAKES]) for v in SAMPLE_VOICES}
    single_reference = {v: clip_vecs[v][0] for v in SAMPLE_VOICES}
    protected = {v: _centroid([clip_vecs[v][t] for t in PROTECTED_TAKES]) for v in SAMPLE_VOICES}

    _log("reference engine outputs")
    output_vecs = _engine_outputs(kit, encoder, args.cache)

    sets = {"all": SAMPLE_VOICES, "distinct": DISTINCT, "piper_family": PIPER_FAMILY}
    trials: dict[str, tuple[Trials, str]] = {}
    for set_name, voices in sets.items():
        same, out, prot = (
            "same_speaker_threshold",
            "output_match_threshold",
            "protected_match_threshold",
        )
        trials[f"clips/{set_name}"] = (_pairwise(clip_vecs, voices), same)
        trials[f"consent/{set_name}"] = (_cross(consent_vecs, single_reference, voices), same)
        # Enrolment with one reference clip per registration (the demo's and the tests' case):
        # takes 1–3 of X against take 0 of Y; and with two-clip centroids (takes 0–1 vs 2–3).
        others = {v: clip_vecs[v][1:TAKES] for v in voices}
        trials[f"enrolment1/{set_name}"] = (_cross(others, single_reference, voices), prot)
        centroids = {v: [reference[v]] for v in voices}
        trials[f"enrolment2/{set_name}"] = (_cross(centroids, protected, voices), prot)
        trials[f"output/{set_name}"] = (_cross(output_vecs, reference, voices), out)
        trials[f"protected/{set_name}"] = (_cross(output_vecs, protected, voices), prot)
    results: dict[str, Any] = {"configured": configured, "encoder": encoder.version, "cases": {}}
    for name, (t, key) in trials.items():
        results["cases"][name] = _summarise(t, configured, key)
    proposal = _propose(results["cases"])
    results["proposal"] = proposal
    proposed = {k: p["value"] for k, p in proposal.items()}
    proposed["protected_margin"] = configured["protected_margin"]
    for name, (t, key) in trials.items():
        far, frr = _rates(t, proposed[key])
        results["cases"][name]["far_at_proposed"] = round(far, 4)
        results["cases"][name]["frr_at_proposed"] = round(frr, 4)
    for set_name, voices in sets.items():
        case = results["cases"][f"protected/{set_name}"]
        rule_thresholds = sorted({*RULE_THRESHOLDS, proposed["protected_match_threshold"]})
        case["rule"] = [
            _protected_rule(
                output_vecs,
                reference,
                protected,
                voices,
                {
                    "protected_match_threshold": thr,
                    "protected_margin": proposed["protected_margin"],
                },
            )
            for thr in rule_thresholds
        ]
    results["seconds"] = round(time.perf_counter() - started, 1)
    _print(results)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))
    return 0


# --- clips -----------------------------------------------------------------------------------


def _statement(nonce: str) -> str:
    return build_statement("Alex Sample", ["Calibration Tenant"], ["tts"], nonce)


def _spoken(kit: SampleKit, voice: str, text: str) -> tuple[Vec, int]:
    """``voice`` reading ``text``, cached as WAV (speak_as itself caches nothing)."""
    import soundfile

    digest = hashlib.sha256(text.encode()).hexdigest()[:12]
    path = kit.cache_dir / "calibration" / f"v{KIT_VERSION}-{voice}-{digest}.wav"
    if not path.is_file():
        audio, rate = kit.speak(voice, text)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp.wav")
        soundfile.write(tmp, audio, rate, subtype="FLOAT")
        tmp.replace(path)
    audio, rate = soundfile.read(path, dtype="float32")
    return np.asarray(audio, dtype=np.float32), int(rate)


def _engine_outputs(
    kit: SampleKit, encoder: ResemblyzerEncoder, cache: Path
) -> dict[str, list[Vec]]:
    """Embeddings of the engine speaking :data:`OUTPUT_SENTENCES` toward each sample voice,
    prepared from the voice's reference takes as registration does."""
    engine = ReferenceEngine(cache, threads=1)
    bare = [engine.speak(s) for s in OUTPUT_SENTENCES]  # stage 1 is the same for every voice
    out: dict[str, list[Vec]] = {}
    for voice in SAMPLE_VOICES:
        clips = [kit.clip(voice, take=t) for t in REFERENCE_TAKES]
        handle = engine.prepare_voice(
            VoiceAssets(
                voice_id=voice,
                references=tuple(
                    ReferenceClip(c.audio, c.sample_rate, c.transcript) for c in clips
                ),
            )
        )
        out[voice] = [_embed(encoder, engine.transfer(a, handle.state), ENGINE_RATE) for a in bare]
        _log(f"  engine → {voice}")
    return out


def _embed(encoder: ResemblyzerEncoder, audio: Vec, rate: int) -> Vec:
    return encoder.embed(audio, rate)


def _centroid(vectors: Sequence[Vec]) -> Vec:
    mean = np.mean(np.stack(vectors), axis=0)
    return (mean / np.linalg.norm(mean)).astype(np.float32)


# --- trials ----------------------------------------------------------------------------------


def _cos(a: Vec, b: Vec) -> float:
    return float(np.dot(a.astype(np.float64), b.astype(np.float64)))


def _pairwise(vecs: dict[str, list[Vec]], voices: Sequence[str]) -> Trials:
    """Every unordered pair of clips among ``voices``."""
    items = [(v, x) for v in voices for x in vecs[v]]
    genuine: list[float] = []
    impostor: list[float] = []
    pairs: list[tuple[str, str]] = []
    for i, (vi, xi) in enumerate(items):
        for vj, xj in items[i + 1 :]:
            if vi == vj:
                genuine.append(_cos(xi, xj))
            else:
                impostor.append(_cos(xi, xj))
                pairs.append((vi, vj))
    return Trials(np.array(genuine), np.array(impostor), tuple(pairs))


def _cross(probes: dict[str, list[Vec]], models: dict[str, Vec], voices: Sequence[str]) -> Trials:
    """Every probe of every voice in ``voices`` against every voice's model (centroid)."""
    genuine: list[float] = []
    impostor: list[float] = []
    pairs: list[tuple[str, str]] = []
    for pv in voices:
        for probe in probes[pv]:
            for mv in voices:
                if pv == mv:
                    genuine.append(_cos(probe, models[mv]))
                else:
                    impostor.append(_cos(probe, models[mv]))
                    pairs.append((pv, mv))
    return Trials(np.array(genuine), np.array(impostor), tuple(pairs))


def _protected_rule(
    outputs: dict[str, list[Vec]],
    own: dict[str, Vec],
    protected: dict[str, Vec],
    voices: Sequence[str],
    thresholds: dict[str, float],
) -> dict[str, float]:
    """The orchestrator's blocking rule: an output is blocked when its similarity to a protected
    voice P is at or above the protected-match threshold (today ``same_speaker_threshold``) and above its similarity to its own voice's
    centroid plus ``protected_margin``. Three scenarios, every (X, Y) pair of ``voices``:

    - ``false_block``: output for voice X, own centroid X, protected Y ≠ X: must pass;
    - ``same``: output for X, own centroid X, protected X (other clips of the same speaker): the
      case enrolment refuses before any generation; the margin rule then compares two near-equal
      scores, so blocking here is not expected;
    - ``drift``: the engine speaks like protected voice Y while the request names voice X ≠ Y (an
      engine or a voice file that drifted onto a protected speaker), simulated as output for Y,
      own centroid X, protected Y: must be blocked.
    """
    thr, margin = thresholds["protected_match_threshold"], thresholds["protected_margin"]

    def blocks(out: Vec, own_voice: str, protected_voice: str) -> bool:
        sim_p = _cos(out, protected[protected_voice])
        return sim_p >= thr and sim_p > _cos(out, own[own_voice]) + margin

    false_block = [
        blocks(out, x, y) for x in voices for out in outputs[x] for y in voices if y != x
    ]
    same = [blocks(out, x, x) for x in voices for out in outputs[x]]
    drift = [blocks(out, x, y) for y in voices for out in outputs[y] for x in voices if x != y]
    return {
        "threshold": thr,
        "false_block_rate": round(float(np.mean(false_block)), 4),
        "block_rate_same_speaker": round(float(np.mean(same)), 4),
        "drift_block_rate": round(float(np.mean(drift)), 4),
    }


# --- statistics ------------------------------------------------------------------------------


def _distribution(x: npt.NDArray[np.float64]) -> dict[str, Any]:
    q = np.percentile(x, [1, 5, 25, 50, 75, 95, 99])
    counts, _ = np.histogram(np.clip(x, 0.0, 1.0), bins=HISTOGRAM_EDGES)
    return {
        "n": int(x.size),
        "min": round(float(x.min()), 4),
        "p1": round(float(q[0]), 4),
        "p5": round(float(q[1]), 4),
        "p25": round(float(q[2]), 4),
        "p50": round(float(q[3]), 4),
        "p75": round(float(q[4]), 4),
        "p95": round(float(q[5]), 4),
        "p99": round(float(q[6]), 4),
        "max": round(float(x.max()), 4),
        "mean": round(float(x.mean()), 4),
        "histogram": {"edges": HISTOGRAM_EDGES.tolist(), "counts": counts.tolist()},
    }


def _rates(t: Trials, threshold: float) -> tuple[float, float]:
    far = float(np.mean(t.impostor >= threshold))
    frr = float(np.mean(t.genuine < threshold))
    return far, frr


def _eer(t: Trials) -> tuple[float, float]:
    """Equal error rate and its threshold: the candidate threshold (every observed score) where
    FAR and FRR are closest; the EER is their mean there."""
    candidates = np.unique(np.concatenate([t.genuine, t.impostor]))
    best = (2.0, 0.0, 0.0)
    for thr in candidates:
        far, frr = _rates(t, float(thr))
        gap = abs(far - frr)
        if gap < best[0]:
            best = (gap, (far + frr) / 2, float(thr))
    return best[1], best[2]


def _summarise(
    t: Trials, configured: dict[str, float], key: str = "same_speaker_threshold"
) -> dict[str, Any]:
    eer, eer_thr = _eer(t)
    far, frr = _rates(t, configured[key])
    # Zero-FAR operating point: just above the best-scoring impostor.
    zero_far_thr = float(t.impostor.max()) + 1e-4
    _, frr_at_zero_far = _rates(t, zero_far_thr)
    return {
        "genuine": _distribution(t.genuine),
        "impostor": _distribution(t.impostor),
        "eer": round(eer, 4),
        "eer_threshold": round(eer_thr, 4),
        "configured_key": key,
        "configured_threshold": configured[key],
        "far_at_configured": round(far, 4),
        "frr_at_configured": round(frr, 4),
        "zero_far_threshold": round(zero_far_thr, 4),
        "frr_at_zero_far": round(frr_at_zero_far, 4),
        "separable": bool(t.genuine.min() > t.impostor.max()),
        "sweep": {
            label: dict(zip(("far", "frr"), _rates(t, thr), strict=True))
            for label, thr in zip(SWEEP_LABELS, SWEEP, strict=True)
        },
        "hardest_impostors": _hardest(t),
    }


def _hardest(t: Trials, n: int = 3) -> list[dict[str, Any]]:
    """The ``n`` voice pairs with the highest impostor score (each pair once, at its best)."""
    best: dict[tuple[str, str], float] = {}
    for (a, b), score in zip(t.impostor_pairs, t.impostor.tolist(), strict=True):
        key = (min(a, b), max(a, b))
        best[key] = max(best.get(key, -1.0), score)
    top = sorted(best.items(), key=lambda kv: -kv[1])[:n]
    return [{"pair": list(k), "score": round(v, 4)} for k, v in top]


def _propose(cases: dict[str, Any]) -> dict[str, Any]:
    """Thresholds from the distinct voices, each trading the error that matters less for its check.

    ``same_speaker_threshold`` guards consent: a false accept lets someone else's voice be cloned,
    so FAR is driven to zero; where genuine and impostor trials separate, the threshold sits midway
    in the gap (rounded to 0.01). The protected-voice and other-speaker checks are the other way
    round: there a *miss* (FRR) lets a protected or already-registered speaker be cloned, and a
    false accept only refuses an innocent enrolment for an admin to review, so FRR is driven to
    zero; that needs a threshold of its own (``protected_match_threshold``, not yet a setting). ``output_match_threshold`` only confirms that an output is its own
    voice; a false reject refuses a paying request, so FRR is driven to zero: 0.05 below the worst
    genuine output, rounded down to 0.05.
    """
    consent = cases["consent/distinct"]
    lo, hi = consent["impostor"]["max"], consent["genuine"]["min"]
    same = (lo + hi) / 2 if hi > lo else consent["zero_far_threshold"]
    output = cases["output/distinct"]
    worst = output["genuine"]["min"]
    enrol = cases["enrolment1/distinct"]
    weakest = enrol["genuine"]["min"]
    return {
        "same_speaker_threshold": {
            "value": round(same, 2),
            "from": "consent/distinct",
            "rule": "zero FAR: midway between impostor max and genuine min",
            "impostor_max": lo,
            "genuine_min": hi,
        },
        "protected_match_threshold": {
            "value": float(np.floor((weakest - 0.01) * 100) / 100),
            "from": "enrolment1/distinct",
            "rule": "zero FRR (no protected or already-registered speaker slips through with a "
            "single clip): 0.01 below the weakest genuine score, rounded down to 0.01",
            "impostor_max": enrol["impostor"]["max"],
            "genuine_min": weakest,
        },
        "output_match_threshold": {
            "value": float(np.floor((worst - 0.05) * 20) / 20),
            "from": "output/distinct",
            "rule": "zero FRR: 0.05 below the worst genuine output, rounded down to 0.05",
            "impostor_max": output["impostor"]["max"],
            "genuine_min": worst,
        },
    }


# --- output ------------------------------------------------------------------------------------


def _print(r: dict[str, Any]) -> None:
    cfg = r["configured"]
    print(f"speaker calibration — {r['encoder']} ({r['seconds']} s)")
    print(
        f"configured: same_speaker_threshold={cfg['same_speaker_threshold']}, "
        f"output_match_threshold={cfg['output_match_threshold']}, "
        f"protected_margin={cfg['protected_margin']}\n"
    )
    print(
        "| case | genuine n / p1 / p5 / p50 / min | impostor n / p50 / p95 / p99 / max | EER @ thr "
        "| thr | FAR / FRR at thr | zero-FAR thr → FRR |"
    )
    print("|---|---|---|---|---|---|---|")
    for name, c in r["cases"].items():
        g, i = c["genuine"], c["impostor"]
        print(
            f"| {name} | {g['n']} / {g['p1']:.3f} / {g['p5']:.3f} / {g['p50']:.3f} / {g['min']:.3f} "
            f"| {i['n']} / {i['p50']:.3f} / {i['p95']:.3f} / {i['p99']:.3f} / {i['max']:.3f} "
            f"| {100 * c['eer']:.1f}% @ {c['eer_threshold']:.3f} | {c['configured_threshold']} "
            f"| {100 * c['far_at_configured']:.1f}% / {100 * c['frr_at_configured']:.1f}% "
            f"| {c['zero_far_threshold']:.3f} → {100 * c['frr_at_zero_far']:.1f}% |"
        )
    print("\n| case | FAR / FRR at proposed thr |")
    print("|---|---|")
    for name, c in r["cases"].items():
        print(f"| {name} | {100 * c['far_at_proposed']:.1f}% / {100 * c['frr_at_proposed']:.1f}% |")
    print("\nFAR / FRR (%) by threshold:")
    print("| case | " + " | ".join(SWEEP_LABELS) + " |")
    print("|---|" + "---|" * len(SWEEP_LABELS))
    for name, c in r["cases"].items():
        cells = [
            f"{100 * c['sweep'][k]['far']:.1f} / {100 * c['sweep'][k]['frr']:.1f}"
            for k in SWEEP_LABELS
        ]
        print(f"| {name} | " + " | ".join(cells) + " |")
    print("\nhardest impostor pairs (best score of the pair):")
    for name, c in r["cases"].items():
        pairs = ", ".join(f"{'~'.join(h['pair'])} {h['score']:.3f}" for h in c["hardest_impostors"])
        print(f"  {name:<24} {pairs}")
    print(
        "\nprotected-voice blocking at generation (rule: sim to protected ≥ threshold and > sim to "
        "own voice + margin):"
    )
    print(
        "| set @ threshold | false blocks (own X, protected Y≠X) | blocks, protected = own speaker "
        "| drift blocked (speaks like protected Y, request names X) |"
    )
    print("|---|---|---|---|")
    for name, c in r["cases"].items():
        for rule in c.get("rule", []):
            if rule:
                print(
                    f"| {name} @ {rule['threshold']} | {100 * rule['false_block_rate']:.1f}% "
                    f"| {100 * rule['block_rate_same_speaker']:.1f}% "
                    f"| {100 * rule['drift_block_rate']:.1f}% |"
                )
    print("\nhistograms (counts per 0.05 of cosine similarity, 0.00 → 1.00):")
    for name, c in r["cases"].items():
        for side in ("genuine", "impostor"):
            counts = c[side]["histogram"]["counts"]
            print(f"  {name:<24} {side:<8} {_bars(counts)}")
    print("\nproposed thresholds (from the distinct voices):")
    for key, p in r["proposal"].items():
        print(
            f"  {key} = {p['value']:.2f}  ({p['from']}, {p['rule']}; impostor max "
            f"{p['impostor_max']:.3f}, genuine min {p['genuine_min']:.3f})"
        )


def _bars(counts: Iterable[int]) -> str:
    return " ".join(f"{c:>3}" if c else "  ." for c in counts)


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
