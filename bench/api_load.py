"""The HTTP API under load: concurrent clients against ``voiceseal serve`` on loopback.

Usage (from the repository root)::

    .venv/bin/python bench/api_load.py                      # 16 clients for 120 s, then verify
    .venv/bin/python bench/api_load.py --seconds 10 --json out.json

What it does, all through the public interfaces:

1. makes a fresh data folder (SQLite) in a temporary directory, migrates it (``voiceseal db
   upgrade``) and makes the first admin key (``voiceseal keys create --role admin``);
2. starts ``voiceseal serve`` on 127.0.0.1 and a free port (one worker unless ``--workers``);
3. through the API: creates a tenant, raises its rate limit (``PATCH /v1/tenants/{id}``: the
   default of 120 requests a minute would make this a test of the limiter, not of the pipeline),
   creates a tenant key and an auditor key, issues a consent statement, uploads a sample speaker
   reading it, and registers the voice;
4. one warm-up request (models load on first use), then ``--clients`` threads each send
   ``POST /v1/audio/speech`` with short sentences (4–12 words) in every response format, back to
   back, until ``--seconds`` have passed (or ``--max-requests`` were sent);
5. afterwards, with the load stopped, sends every returned clip (or an evenly spread sample of
   ``--verify`` of them) to ``POST /v1/audit/detect`` as the auditor and checks that the traced
   generation is the one named by that response's ``X-Generation-Id`` header.

Latency is measured by the client: request sent → whole body received. The server runs on the
same machine as the clients, so the figures include the clients' own CPU use.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[1]
VOICESEAL = REPO / ".venv" / "bin" / "voiceseal"
SAMPLE_CACHE = REPO / "data" / ".test-cache"
SPEAKER = "joe-deep"
FORMATS = ("wav", "flac", "mp3", "opus", "aac", "pcm")
#: What the audit upload is called and labelled for each response format.
UPLOAD_AS = {
    "wav": ("clip.wav", "audio/wav"),
    "flac": ("clip.flac", "audio/flac"),
    "mp3": ("clip.mp3", "audio/mpeg"),
    "opus": ("clip.ogg", "audio/ogg"),
    "aac": ("clip.aac", "audio/aac"),
    "pcm": ("clip.wav", "audio/wav"),  # raw PCM carries no header: wrapped in WAV first
}
#: The API's PCM format: 16-bit little-endian mono at the output rate (Settings default).
PCM_RATE = 24000
#: Short sentences, 4–12 words, varied phonetics and punctuation.
SENTENCES = (
    "Please hold the line for a moment.",
    "The meeting starts at nine tomorrow morning.",
    "Your parcel has left the warehouse and is on its way.",
    "Turn left at the second traffic light.",
    "Thanks for calling, how can I help you today?",
    "The forecast says light rain after lunch.",
    "Remember to save your work before closing.",
    "Our store opens at eight and closes at six.",
    "Water the plants twice a week in summer.",
    "The train to Boston departs from platform four.",
    "Could you repeat the last number, please?",
    "A cup of coffee costs three dollars here.",
    "Bright lanterns hung across the narrow street.",
    "Your appointment has been moved to Friday afternoon.",
    "She packed two sandwiches and an apple.",
    "The library will be closed on Monday.",
)
REQUEST_TIMEOUT_S = 300.0
#: Fresh statements tried when the recogniser mishears the nonce.
CONSENT_ATTEMPTS = 3


@dataclass
class Result:
    client: int
    fmt: str
    text: str
    status: int
    latency_s: float
    finished_at: float
    generation_id: str | None = None
    body: bytes = b""
    error: str = ""


@dataclass
class Setup:
    base_url: str
    tenant_id: str
    tenant_key: str
    auditor_key: str
    voice_id: str
    rate_limit_per_minute: int
    timings_s: dict[str, float] = field(default_factory=dict)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=120.0, help="load duration (default 120)")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients (default 16)")
    parser.add_argument("--workers", type=int, default=1, help="server worker processes")
    parser.add_argument(
        "--max-requests", type=int, default=5000, help="stop after this many requests in all"
    )
    parser.add_argument(
        "--verify", type=int, default=0, help="audit at most this many clips (0: every clip)"
    )
    parser.add_argument("--rate-limit", type=int, default=100_000, help="tenant requests/minute")
    parser.add_argument("--json", type=Path, help="also write every figure to this JSON file")
    parser.add_argument("--keep", action="store_true", help="keep the temporary data folder")
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.clients < 1 or args.max_requests < 1:
        parser.error("--seconds, --clients and --max-requests must be positive")

    workdir = Path(tempfile.mkdtemp(prefix="voiceseal-load-"))
    env = _server_env(workdir)
    server: subprocess.Popen[bytes] | None = None
    log_path = workdir / "server.log"
    try:
        admin_key = _bootstrap(env, workdir)
        port = _free_port()
        with log_path.open("wb") as log:
            server = subprocess.Popen(
                [
                    *(str(VOICESEAL), "serve", "--host", "127.0.0.1", "--port", str(port)),
                    *("--workers", str(args.workers)),
                ],
                cwd=workdir,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        base = f"http://127.0.0.1:{port}"
        _wait_ready(base, server)
        setup = _set_up(base, admin_key, args.rate_limit)
        warm = _warm_up(setup)
        results, wall = _load(setup, args.clients, args.seconds, args.max_requests)
        verification = _verify(setup, results, args.verify)
        report = _report(args, setup, warm, results, wall, verification)
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        if server is not None and server.returncode not in (0, -15):
            print(f"server exited with {server.returncode}; log: {log_path}", file=sys.stderr)
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"data folder kept: {workdir}", file=sys.stderr)
    _print(report)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2))
    return 0


# --- server ----------------------------------------------------------------------------------


def _server_env(workdir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOICESEAL_")}
    env.update(
        VOICESEAL_DATA_DIR=str(workdir / "data"),
        VOICESEAL_ENVIRONMENT="development",
        # Fresh secrets for this run only; never printed.
        VOICESEAL_WATERMARK_KEY=secrets.token_hex(32),
        VOICESEAL_KEY_PEPPER=secrets.token_hex(32),
        VOICESEAL_LOG_LEVEL="WARNING",
    )
    return env


def _bootstrap(env: dict[str, str], workdir: Path) -> str:
    """Migrate the fresh SQLite registry and make the first admin key with the CLI."""
    _cli(env, workdir, "db", "upgrade")
    out = _cli(env, workdir, "keys", "create", "--role", "admin", "--name", "load-bench")
    return out.strip().splitlines()[-1]


def _cli(env: dict[str, str], workdir: Path, *cmd: str) -> str:
    done = subprocess.run(
        [str(VOICESEAL), *cmd], cwd=workdir, env=env, capture_output=True, text=True, timeout=300
    )
    if done.returncode != 0:
        raise RuntimeError(f"voiceseal {' '.join(cmd)} failed ({done.returncode}): {done.stderr}")
    return done.stdout


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ready(base: str, server: subprocess.Popen[bytes], timeout_s: float = 180.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"voiceseal serve exited with {server.returncode} while starting")
        try:
            if httpx.get(f"{base}/health", timeout=2.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"voiceseal serve did not answer /health within {timeout_s:.0f} s")


# --- setup through the API -------------------------------------------------------------------


def _set_up(base: str, admin_key: str, rate_limit: int) -> Setup:
    from voiceseal.kit import audio as audio_io
    from voiceseal_plugins.reference_engine import samples

    timings: dict[str, float] = {}
    admin = _auth(admin_key)
    with httpx.Client(base_url=base, timeout=REQUEST_TIMEOUT_S) as c:
        tenant = _ok(c.post("/v1/tenants", headers=admin, json={"name": "load-bench"}), 201)
        patched = _ok(
            c.patch(
                f"/v1/tenants/{tenant['id']}",
                headers=admin,
                json={"rate_limit_per_minute": rate_limit},
            ),
            200,
        )
        tenant_key = _ok(
            c.post("/v1/keys", headers=admin, json={"role": "tenant", "tenant_id": tenant["id"]}),
            201,
        )["key"]
        auditor_key = _ok(c.post("/v1/keys", headers=admin, json={"role": "auditor"}), 201)["key"]
        start = time.perf_counter()
        consent, attempts = _verified_consent(c, admin, tenant["id"])
        timings["consent_recording"] = time.perf_counter() - start
        timings["consent_attempts"] = attempts
        clip = samples.sample_voice(SPEAKER, SAMPLE_CACHE, take=0)
        start = time.perf_counter()
        voice = _ok(
            c.post(
                "/v1/audio/voices",
                headers=admin,
                data={
                    "name": "load-voice",
                    "consent": consent["id"],
                    "transcript": clip.transcript,
                },
                files={
                    "audio_sample": (
                        "ref.wav",
                        audio_io.encode(clip.audio, clip.sample_rate, "wav"),
                        "audio/wav",
                    )
                },
            ),
            201,
        )
        timings["voice_registration"] = time.perf_counter() - start
    return Setup(
        base,
        tenant["id"],
        tenant_key,
        auditor_key,
        voice["id"],
        int(patched["rate_limit_per_minute"]),
        timings,
    )


def _verified_consent(
    c: httpx.Client, admin: dict[str, str], tenant_id: str
) -> tuple[dict[str, Any], int]:
    """Issue a statement and upload the sample speaker reading it; a fresh statement on a nonce the
    recogniser misheard (``consent_nonce_mismatch``), as a person would be asked to read again."""
    from voiceseal.kit import audio as audio_io
    from voiceseal_plugins.reference_engine import samples

    for attempt in range(1, CONSENT_ATTEMPTS + 1):
        consent = _ok(
            c.post(
                "/v1/audio/voice_consents",
                headers=admin,
                json={
                    "speaker_name": "Load Bench Speaker",
                    "tenants": [tenant_id],
                    "purposes": ["tts"],
                    "languages": ["en"],
                },
            ),
            201,
        )
        spoken = samples.speak_as(SPEAKER, consent["statement"], SAMPLE_CACHE)
        wav = audio_io.encode(spoken.audio, spoken.sample_rate, "wav")
        r = c.post(
            f"/v1/audio/voice_consents/{consent['id']}/recording",
            headers=admin,
            files={"recording": ("consent.wav", wav, "audio/wav")},
        )
        if r.status_code == 200:
            return consent, attempt
        if r.status_code != 422 or r.json().get("code") != "consent_nonce_mismatch":
            _ok(r, 200)  # raises with the server's answer
        print(
            f"consent attempt {attempt}: nonce misheard, issuing a new statement", file=sys.stderr
        )
    raise RuntimeError(f"no consent recording verified in {CONSENT_ATTEMPTS} attempts")


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _ok(r: httpx.Response, status: int) -> dict[str, Any]:
    if r.status_code != status:
        raise RuntimeError(f"{r.request.method} {r.request.url.path} → {r.status_code}: {r.text}")
    return dict(r.json())


def _warm_up(setup: Setup) -> float:
    start = time.perf_counter()
    with httpx.Client(base_url=setup.base_url, timeout=REQUEST_TIMEOUT_S) as c:
        _speech(c, setup, "Warming up the engine.", "wav")
    return time.perf_counter() - start


def _speech(c: httpx.Client, setup: Setup, text: str, fmt: str) -> httpx.Response:
    r = c.post(
        "/v1/audio/speech",
        headers=_auth(setup.tenant_key),
        json={"input": text, "voice": setup.voice_id, "response_format": fmt},
    )
    return r


# --- load --------------------------------------------------------------------------------------


def _load(
    setup: Setup, clients: int, seconds: float, max_requests: int
) -> tuple[list[Result], float]:
    results: list[Result] = []
    lock = threading.Lock()
    budget = [max_requests]
    start = time.perf_counter()
    deadline = start + seconds

    def take_ticket() -> bool:
        with lock:
            if budget[0] <= 0:
                return False
            budget[0] -= 1
            return True

    def client(index: int) -> None:
        rng = random.Random(index)
        with httpx.Client(base_url=setup.base_url, timeout=REQUEST_TIMEOUT_S) as c:
            n = 0
            while time.perf_counter() < deadline and take_ticket():
                text = rng.choice(SENTENCES)
                # Round-robin over formats, offset per client: every format gets equal traffic.
                fmt = FORMATS[(index + n) % len(FORMATS)]
                n += 1
                sent = time.perf_counter()
                try:
                    r = _speech(c, setup, text, fmt)
                    res = Result(
                        index,
                        fmt,
                        text,
                        r.status_code,
                        time.perf_counter() - sent,
                        time.perf_counter() - start,
                        r.headers.get("x-generation-id"),
                        r.content if r.status_code == 200 else b"",
                        "" if r.status_code == 200 else r.text[:300],
                    )
                except httpx.HTTPError as exc:
                    res = Result(
                        index,
                        fmt,
                        text,
                        0,
                        time.perf_counter() - sent,
                        time.perf_counter() - start,
                        error=f"{type(exc).__name__}: {exc}",
                    )
                with lock:
                    results.append(res)

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        # Requests in flight at the deadline finish (bounded by the request timeout).
        t.join(timeout=seconds + REQUEST_TIMEOUT_S + 30)
    return results, time.perf_counter() - start


# --- verification ------------------------------------------------------------------------------


def _verify(setup: Setup, results: list[Result], limit: int) -> dict[str, Any]:
    ok = [r for r in results if r.status == 200]
    if limit and len(ok) > limit:
        picks = np.linspace(0, len(ok) - 1, limit).round().astype(int)
        ok = [ok[i] for i in sorted(set(picks.tolist()))]
    outcomes: Counter[str] = Counter()
    by_format: dict[str, Counter[str]] = {f: Counter() for f in FORMATS}
    failures: list[dict[str, Any]] = []
    start = time.perf_counter()
    with httpx.Client(base_url=setup.base_url, timeout=REQUEST_TIMEOUT_S) as c:
        for r in ok:
            outcome, detail = _trace_one(c, setup, r)
            outcomes[outcome] += 1
            by_format[r.fmt][outcome] += 1
            if outcome != "matched" and len(failures) < 20:
                failures.append(
                    {
                        "outcome": outcome,
                        "format": r.fmt,
                        "text": r.text,
                        "generation_id": r.generation_id,
                        **detail,
                    }
                )
    checked = sum(outcomes.values())
    return {
        "checked": checked,
        "matched": outcomes["matched"],
        "fraction_matched": round(outcomes["matched"] / checked, 4) if checked else None,
        "fingerprint_only": outcomes["fingerprint_only"],
        "outcomes": dict(outcomes),
        "by_format": {f: dict(c) for f, c in by_format.items() if c},
        "failures": failures,
        "seconds": round(time.perf_counter() - start, 1),
    }


def _trace_one(c: httpx.Client, setup: Setup, r: Result) -> tuple[str, dict[str, Any]]:
    if not r.generation_id:
        return "no_generation_header", {}
    body = r.body
    if r.fmt == "pcm":
        body = _pcm_to_wav(body)
    name, ctype = UPLOAD_AS[r.fmt]
    resp = c.post(
        "/v1/audit/detect",
        headers=_auth(setup.auditor_key),
        files={"file": (name, body, ctype)},
    )
    if resp.status_code != 200:
        return f"detect_http_{resp.status_code}", {"body": resp.text[:300]}
    found = resp.json()
    if not found.get("detected"):
        near = [d.get("generation_id") for d in found.get("near_duplicates") or []]
        # No watermark: the content fingerprint may still name the generation (the fallback).
        outcome = "fingerprint_only" if near[:1] == [r.generation_id] else "not_detected"
        return outcome, {"watermark": found.get("watermark"), "near_duplicates": near[:3]}
    traced = (found.get("generation") or {}).get("id")
    if traced != r.generation_id:
        return "wrong_generation", {"traced": traced}
    return "matched", {}


def _pcm_to_wav(pcm: bytes) -> bytes:
    import soundfile

    samples = np.frombuffer(pcm[: len(pcm) // 2 * 2], "<i2")
    buf = io.BytesIO()
    soundfile.write(buf, samples, PCM_RATE, format="WAV", subtype="PCM_16")
    return buf.getvalue()


# --- report ------------------------------------------------------------------------------------


def _report(
    args: argparse.Namespace,
    setup: Setup,
    warm_s: float,
    results: list[Result],
    wall_s: float,
    verification: dict[str, Any],
) -> dict[str, Any]:
    ok = [r for r in results if r.status == 200]
    statuses = Counter(str(r.status) if r.status else "transport_error" for r in results)
    errors = [
        {"status": r.status, "format": r.fmt, "text": r.text, "error": r.error}
        for r in results
        if r.status != 200
    ]
    lat = np.array([r.latency_s for r in ok]) if ok else np.array([np.nan])
    audio_s = sum(_duration(r) for r in ok)
    per_format = {}
    for fmt in FORMATS:
        f_lat = [r.latency_s for r in ok if r.fmt == fmt]
        per_format[fmt] = {
            "ok": len(f_lat),
            "p50_s": round(float(np.percentile(f_lat, 50)), 3) if f_lat else None,
        }
    return {
        "clients": args.clients,
        "workers": args.workers,
        "seconds_requested": args.seconds,
        "wall_seconds": round(wall_s, 1),
        "rate_limit_per_minute": setup.rate_limit_per_minute,
        "cpu_count": os.cpu_count(),
        "setup_seconds": {k: round(v, 2) for k, v in setup.timings_s.items()},
        "warm_up_request_seconds": round(warm_s, 2),
        "requests": len(results),
        "ok": len(ok),
        "errors": len(results) - len(ok),
        "status_counts": dict(statuses),
        "error_samples": errors[:10],
        "error_texts": dict(Counter(e["text"] for e in errors)),
        "requests_per_second": round(len(ok) / wall_s, 3),
        "audio_seconds_per_second": round(audio_s / wall_s, 3),
        "latency_s": {
            "mean": round(float(np.mean(lat)), 3),
            "p50": round(float(np.percentile(lat, 50)), 3),
            "p95": round(float(np.percentile(lat, 95)), 3),
            "p99": round(float(np.percentile(lat, 99)), 3),
            "max": round(float(np.max(lat)), 3),
        },
        "per_format": per_format,
        "verification": verification,
    }


def _duration(r: Result) -> float:
    """Audio seconds in a response (raw PCM by its length, the rest decoded)."""
    if r.fmt == "pcm":
        return len(r.body) / 2 / PCM_RATE
    from voiceseal.errors import VoiceSealError
    from voiceseal.kit import audio as audio_io

    try:
        return audio_io.decode(r.body, max_seconds=600.0).duration_s
    except VoiceSealError:
        # An undecodable clip only costs the throughput figure; the audit step reports it.
        return 0.0


def _print(r: dict[str, Any]) -> None:
    v = r["verification"]
    lat = r["latency_s"]
    print(
        f"API under load — {r['clients']} clients, {r['workers']} worker(s), "
        f"{r['wall_seconds']} s, {r['cpu_count']} CPU cores, loopback, SQLite"
    )
    print(
        f"tenant rate limit raised to {r['rate_limit_per_minute']}/min (PATCH /v1/tenants/{{id}}); "
        f"warm-up request {r['warm_up_request_seconds']} s; setup {r['setup_seconds']}\n"
    )
    print("| measure | value |")
    print("|---|---|")
    print(f"| requests (ok / errors) | {r['requests']} ({r['ok']} / {r['errors']}) |")
    print(f"| status counts | {', '.join(f'{k}: {n}' for k, n in r['status_counts'].items())} |")
    print(f"| requests/s | {r['requests_per_second']:.2f} |")
    print(f"| audio seconds delivered per second | {r['audio_seconds_per_second']:.2f} |")
    print(
        f"| latency p50 / p95 / p99 / max (s) | {lat['p50']:.2f} / {lat['p95']:.2f} / "
        f"{lat['p99']:.2f} / {lat['max']:.2f} |"
    )
    frac = v["fraction_matched"]
    print(
        f"| clips traced to their own generation by watermark | {v['matched']}/{v['checked']}"
        f"{f' ({100 * frac:.1f}%)' if frac is not None else ''} |"
    )
    print(
        "| of the rest, named by the content fingerprint instead | "
        f"{v['fingerprint_only']}/{v['checked'] - v['matched']} |"
    )
    print("\n| format | ok | p50 latency (s) | traced |")
    print("|---|---|---|---|")
    for fmt, f in r["per_format"].items():
        traced = v["by_format"].get(fmt, {})
        p50 = f"{f['p50_s']:.2f}" if f["p50_s"] is not None else "-"
        print(f"| {fmt} | {f['ok']} | {p50} | {traced.get('matched', 0)}/{sum(traced.values())} |")
    if r["error_samples"]:
        print("\nerrors (first 10):")
        for e in r["error_samples"]:
            print(f"  {e['status']} {e['format']} {e['text']!r}: {e['error'][:160]}")
    if v["failures"]:
        print("\nverification failures (first 20):")
        for f in v["failures"]:
            print(f"  {f}")


if __name__ == "__main__":
    raise SystemExit(main())
