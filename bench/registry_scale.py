"""Registry at scale: watermark-payload → full trace, and speaker search over every voice.

Builds a registry with ``alembic upgrade head`` (a fresh database ``--db-name`` on the PostgreSQL
server ``--pg-url``, or a temporary SQLite file with ``--sqlite``), bulk-loads synthetic rows
(tenants, keys, speakers, voices, consents with their events, one 256-d centroid per voice,
generations with unique random 32-bit watermark payloads), then measures through the production
code paths:

- trace: ``Generation`` by ``watermark_payload`` then ``audit.trace.trace_generation`` (voice,
  speaker, consent and its events, tenant, key), one session per lookup as a request would;
- speaker search: ``voices.fingerprints.nearest`` top-10 over all centroids (the per-engine index:
  exact below ``IndexParams.ann_min_rows``, IVF above), against exact search over the same rows,
  with the recall@10 of the index.

PostgreSQL loading uses COPY of generated text (fixed-width columns built with numpy); while
loading, the big tables' primary keys, unique constraints, secondary indexes and every foreign key
are dropped, then recreated from the definitions read from the catalog before the load, and the
catalog is checked to be identical afterwards (and ``alembic check`` passes). SQLite loads the same
generated rows through SQLAlchemy Core inserts.

Usage (from the repository root):

    .venv/bin/python bench/registry_scale.py                      # 1,000,000 voices, 10,000,000 generations
    .venv/bin/python bench/registry_scale.py --voices 100000 --generations 1000000 --json out.json
    .venv/bin/python bench/registry_scale.py --sqlite             # small registry on SQLite

Synthetic speaker vectors: unit vectors around 4,096 cluster centres plus a shared direction
(resemblyzer d-vectors are all positive-leaning, so random pairs are not orthogonal); a stored
voice's nearest neighbour has cosine ≈ 0.6 and random pairs ≈ 0.2, so search is not trivial.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform as host
import secrets
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg
from psycopg.copy import QueuedLibpqWriter
from sqlalchemy import Engine, Table, create_engine, func, insert, make_url, pool, select, text
from sqlalchemy.types import JSON, BigInteger, Boolean, Float, Integer, LargeBinary

from voiceseal.audit import trace
from voiceseal.kit.db import make_engine, make_sessionmaker, transaction
from voiceseal.kit.migrate import check as alembic_check
from voiceseal.kit.migrate import upgrade
from voiceseal.registry.base import UTCDateTime
from voiceseal.registry.models import EMBEDDING_SEQ, Base, Generation, VoiceEmbedding
from voiceseal.voices import fingerprints
from voiceseal.voices.fingerprints import IndexParams, SpeakerIndex, indexes_for

U8 = npt.NDArray[np.uint8]
I64 = npt.NDArray[np.int64]
F32 = npt.NDArray[np.float32]

DIM = 256
ENCODER = "resemblyzer"
GROUPS = 64
FINE_CLUSTERS = 16_384
CHUNK = 200_000
EPOCH_US = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp() * 1_000_000)
YEAR_US = 365 * 86_400 * 1_000_000
#: Tables loaded by COPY; their keys and indexes are rebuilt after the load.
BULK_TABLES = (
    "speakers",
    "voices",
    "consents",
    "consent_events",
    "voice_embeddings",
    "generations",
)

# --- fixed-width text columns ---------------------------------------------------------------------
# A COPY line is the concatenation of fixed-width byte columns, so a whole chunk of rows is one
# (rows × bytes) array built by numpy. Numbers are zero-padded (PostgreSQL and SQLite parse
# "000123" as 123); inside JSON, values are drawn from ranges of a fixed digit count instead.

HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
MIX = np.uint64(0x9E3779B97F4A7C15)  # odd: multiplying by it permutes 64-bit integers


def const(n: int, value: str | bytes) -> U8:
    b = value.encode() if isinstance(value, str) else value
    return np.broadcast_to(np.frombuffer(b, dtype=np.uint8), (n, len(b)))


def hex_of(raw: U8) -> U8:
    out = np.empty((raw.shape[0], 2 * raw.shape[1]), dtype=np.uint8)
    out[:, 0::2] = HEX[raw >> 4]
    out[:, 1::2] = HEX[raw & 15]
    return out


def random_hex(rng: np.random.Generator, n: int, nbytes: int) -> U8:
    return hex_of(rng.integers(0, 256, (n, nbytes), dtype=np.uint8))


def ids(prefix: str, index: I64) -> U8:
    """``prefix_<24 hex>``: unique per index, random-looking, recomputable for foreign keys."""
    mixed = (index.astype(np.uint64) * MIX).astype(">u8").view(np.uint8).reshape(-1, 8)
    salt = np.frombuffer(prefix.encode().ljust(4, b"_")[:4], dtype=np.uint8)
    raw = np.concatenate([mixed, np.broadcast_to(salt, (len(index), 4))], axis=1)
    return np.concatenate([const(len(index), prefix + "_"), hex_of(raw)], axis=1)


def digits(x: I64, width: int) -> U8:
    powers = 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
    return ((x[:, None] // powers) % 10 + 48).astype(np.uint8)


def decimal(x: npt.NDArray[np.float64], int_width: int, frac_width: int) -> U8:
    scaled = np.round(x * 10**frac_width).astype(np.int64)
    whole, frac = np.divmod(scaled, 10**frac_width)
    return np.concatenate(
        [digits(whole, int_width), const(len(x), "."), digits(frac, frac_width)], axis=1
    )


def stamps(us: I64) -> U8:
    text_ = np.datetime_as_string(us.astype("datetime64[us]"), unit="us").astype("S26")
    return np.concatenate([text_.view(np.uint8).reshape(-1, 26), const(len(us), "+00")], axis=1)


def null(n: int) -> U8:
    return const(n, b"\\N")


def lines(columns: list[U8]) -> bytes:
    n = columns[0].shape[0]
    parts: list[U8] = []
    for i, c in enumerate(columns):
        parts.extend([const(n, "\t")] if i else [])
        parts.append(c)
    parts.append(const(n, "\n"))
    return np.concatenate(parts, axis=1).tobytes()


@dataclass
class Block:
    table: str
    columns: tuple[str, ...]
    data: bytes


# --- synthetic registry ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Sizes:
    voices: int
    generations: int

    @property
    def tenants(self) -> int:
        return max(2, min(1_000, self.voices // 1_000))


@dataclass(frozen=True)
class SpeakerSpace:
    """A hierarchy like real d-vectors: a shared direction, broad groups (sex, age, language),
    fine clusters (similar-sounding voices) inside them, and each voice's own part. Cosine:
    different groups ≈ 0.30, same group ≈ 0.50, same fine cluster ≈ 0.70."""

    shared: F32
    groups: F32
    fine: F32

    def vectors(self, rng: np.random.Generator, n: int) -> F32:
        fine = rng.integers(0, len(self.fine), n)
        group = fine % len(self.groups)
        own = rng.standard_normal((n, DIM)).astype(np.float32) * np.float32(1 / math.sqrt(DIM))
        x = 0.55 * self.shared + 0.45 * self.groups[group] + 0.45 * self.fine[fine] + 0.55 * own
        return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def speaker_space(seed: int) -> SpeakerSpace:
    rng = np.random.default_rng(seed)

    def unit(n: int) -> F32:
        v = rng.standard_normal((n, DIM)).astype(np.float32)
        return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)

    return SpeakerSpace(unit(1)[0], unit(GROUPS), unit(FINE_CLUSTERS))


def small_tables(sizes: Sizes, now_us: int) -> list[Block]:
    t = sizes.tenants
    ti = np.arange(t, dtype=np.int64)
    tenants = Block("tenants", ("id", "name", "status", "rate_limit_per_minute",
                                "char_quota_per_day", "created_at"),
                    lines([ids("ten", ti), np.concatenate([const(t, "tenant-"), digits(ti, 6)], 1),
                           const(t, "active"), null(t), null(t), stamps(ti * 0 + EPOCH_US)]))  # fmt: skip
    ki = np.arange(2 * t, dtype=np.int64)
    keys = Block("api_keys", ("id", "prefix", "hash", "name", "role", "tenant_id", "scopes",
                              "last_used_at", "revoked_at", "created_at"),
                 lines([ids("key", ki), np.concatenate([const(2 * t, "vs_"), digits(ki, 12)], 1),
                        hex_of(np.random.default_rng(5).integers(0, 256, (2 * t, 32), np.uint8)),
                        np.concatenate([const(2 * t, "key-"), digits(ki, 6)], 1),
                        const(2 * t, "tenant"), ids("ten", ki // 2), const(2 * t, '["speech"]'),
                        stamps(ki * 0 + now_us), null(2 * t), stamps(ki * 0 + EPOCH_US)]))  # fmt: skip
    return [tenants, keys]


def registry_chunk(sizes: Sizes, start: int, n: int, vectors: F32, seed: int) -> list[Block]:
    """Speakers, voices, consents (+2 events each) and centroids for voices [start, start+n)."""
    rng = np.random.default_rng(seed)
    i = np.arange(start, start + n, dtype=np.int64)
    born = EPOCH_US + rng.integers(0, YEAR_US // 2, n)
    name = np.concatenate([const(n, "speaker-"), digits(i, 8)], 1)
    speakers = Block("speakers", ("id", "name", "contact", "created_at"),
                     lines([ids("spk", i), name, const(n, ""), stamps(born)]))  # fmt: skip
    voices = Block("voices", ("id", "name", "speaker_id", "engine", "status", "languages",
                              "engine_options", "engine_state", "model_files",
                              "created_by_key_id", "created_at"),
                   lines([ids("voice", i), np.concatenate([const(n, "voice-"), digits(i, 8)], 1),
                          ids("spk", i), const(n, "reference"), const(n, "active"),
                          const(n, '["en"]'), const(n, "{}"),
                          np.concatenate([const(n, '{"f0_mean": 1'), digits(i % 100, 2),
                                          const(n, ".5}")], 1),
                          const(n, "{}"), ids("key", (i % sizes.tenants) * 2), stamps(born + 2_000_000)]))  # fmt: skip
    tenant = ids("ten", i % sizes.tenants)
    statement = np.concatenate([const(n, "I, "), name, const(n, ", agree that tenant "), tenant,
                                const(n, " may use my voice for narration. Code "),
                                digits(rng.integers(0, 10**6, n), 6), const(n, ".")], 1)  # fmt: skip
    consents = Block("consents", ("id", "speaker_id", "voice_id", "version", "statement",
                                  "nonce_hash", "nonce_expires_at", "nonce_used_at",
                                  "statement_sample_id", "status", "scope_tenants",
                                  "scope_purposes", "scope_languages", "expires_at",
                                  "verification", "created_by_key_id", "created_at"),
                     lines([ids("cons", i), ids("spk", i), ids("voice", i), const(n, "1"),
                            statement, random_hex(rng, n, 32), stamps(born + 600_000_000),
                            stamps(born + 60_000_000), null(n), const(n, "active"),
                            np.concatenate([const(n, '["'), tenant, const(n, '"]')], 1),
                            const(n, '["narration"]'), const(n, '["en"]'), null(n),
                            np.concatenate([const(n, '{"speaker_similarity": 0.'),
                                            digits(rng.integers(8000, 9999, n), 4),
                                            const(n, ', "statement_ratio": 0.'),
                                            digits(rng.integers(9000, 9999, n), 4), const(n, "}")], 1),
                            ids("key", (i % sizes.tenants) * 2), stamps(born)]))  # fmt: skip
    events = Block("consent_events", ("id", "consent_id", "event", "reason", "actor_key_id",
                                      "data", "created_at"),
                   lines([ids("cev", 2 * i), ids("cons", i), const(n, "issued"), const(n, ""),
                          ids("key", (i % sizes.tenants) * 2), const(n, '{"version": 1}'),
                          stamps(born)])
                   + lines([ids("cev", 2 * i + 1), ids("cons", i), const(n, "verified"),
                            const(n, ""), ids("key", (i % sizes.tenants) * 2),
                            np.concatenate([const(n, '{"statement_ratio": 0.'),
                                            digits(rng.integers(9000, 9999, n), 4), const(n, "}")], 1),
                            stamps(born + 60_000_000)]))  # fmt: skip
    vec_hex = hex_of(np.ascontiguousarray(vectors).view(np.uint8).reshape(n, 4 * DIM))
    embeddings = Block("voice_embeddings", ("id", "seq", "kind", "voice_id", "sample_id",
                                            "protected_voice_id", "encoder", "encoder_version",
                                            "dim", "vector", "created_at"),
                       lines([ids("emb", i), digits(i + 1, 10), const(n, "centroid"),
                              ids("voice", i), null(n), null(n), const(n, ENCODER),
                              const(n, "0.1.4"), const(n, str(DIM)),
                              np.concatenate([const(n, b"\\\\x"), vec_hex], 1),
                              stamps(born + 1_000_000)]))  # fmt: skip
    return [speakers, voices, consents, events, embeddings]


GENERATION_COLUMNS = (
    "id", "tenant_id", "api_key_id", "voice_id", "consent_id", "consent_version", "status",
    "refusal_code", "refusal_reason", "purpose", "engine", "engine_version", "model_versions",
    "language", "text_sha256", "text_chars", "audio_sha256", "duration_s", "sample_rate",
    "response_format", "streamed", "watermarker", "watermark_payload", "watermark_confidence",
    "speaker_encoder", "speaker_vector", "similarity_to_voice", "max_protected_similarity",
    "protected_voice_id", "timings_ms", "created_at",
)  # fmt: skip
ENGINES = {
    "reference": ("piper-1.8.0+world", '{"piper": "joe-us-1.0.0"}'),
    "gpt-sovits": ("v2-2407", '{"gpt": "s1v2-e15", "sovits": "s2G2333k"}'),
}


def generation_rows(sizes: Sizes, index: I64, payload: I64, seed: int, status: str,
                    engine: str) -> bytes:  # fmt: skip
    """Generations ``index`` (one status and engine); ``payload`` < 0 means none."""
    rng = np.random.default_rng(seed)
    n = len(index)
    voice = rng.integers(0, sizes.voices, n)
    tenant = voice % sizes.tenants
    delivered = status == "delivered"
    version, models = ENGINES[engine]

    def maybe(col: U8) -> U8:
        return col if delivered else null(n)

    purpose = np.array([b"narration", b"assistant", b"marketing"])[rng.integers(0, 3, n)]
    language = np.array([b"en", b"de", b"ja"])[rng.integers(0, 3, n)]
    fmt = np.array([b"wav", b"mp3", b"aac"])[rng.integers(0, 3, n)]
    code, reason = {
        "delivered": (None, None),
        "refused": ("consent_scope", "consent does not cover purpose marketing for this tenant"),
        "violation": ("protected_voice", "output matches a protected voice better than its own"),
    }[status]
    return lines([
        ids("gen", index), ids("ten", tenant), ids("key", tenant * 2 + rng.integers(0, 2, n)),
        ids("voice", voice), ids("cons", voice), const(n, "1"), const(n, status),
        const(n, code) if code else null(n), const(n, reason) if reason else null(n),
        purpose.view(np.uint8).reshape(n, 9), const(n, engine), const(n, version),
        const(n, models), language.view(np.uint8).reshape(n, 2), random_hex(rng, n, 32),
        digits(rng.integers(20, 4000, n), 4), maybe(random_hex(rng, n, 32)),
        maybe(decimal(rng.uniform(1.0, 60.0, n), 3, 3)), maybe(const(n, "24000")),
        fmt.view(np.uint8).reshape(n, 3), const(n, "f" if rng.random() < 0.7 else "t"),
        maybe(const(n, "audioseal-16bit")), digits(payload, 10) if delivered else null(n),
        maybe(decimal(rng.uniform(0.9, 1.0, n), 1, 4)), const(n, ENCODER), null(n),
        decimal(rng.uniform(0.75, 0.99, n), 1, 4), decimal(rng.uniform(0.1, 0.6, n), 1, 4),
        null(n),
        np.concatenate([const(n, '{"synth": '), digits(rng.integers(1000, 9999, n), 4),
                        const(n, ', "watermark": '), digits(rng.integers(100, 999, n), 3),
                        const(n, ', "speaker_check": '), digits(rng.integers(100, 999, n), 3),
                        const(n, "}")], 1),
        stamps(EPOCH_US + YEAR_US // 2 + rng.integers(0, YEAR_US // 2, n)),
    ])  # fmt: skip


def unique_payloads(rng: np.random.Generator, n: int) -> I64:
    """``n`` distinct random 32-bit payloads in random order."""
    drawn = np.empty(0, dtype=np.int64)
    while len(drawn) < n:
        # Sort and drop repeats: np.unique takes 84 s on 10M int64 with numpy 2.4 (0.5 s here).
        drawn = np.sort(np.concatenate([drawn, rng.integers(0, 2**32, n + n // 50, np.int64)]))
        drawn = drawn[np.concatenate([[True], drawn[1:] != drawn[:-1]])]
    return rng.permutation(drawn)[:n]


def generation_chunks(sizes: Sizes, payloads: I64, seed: int) -> Iterator[Block]:
    """Generations in chunks: 97 % delivered (with payloads), 2 % refused, 1 % violations."""
    rng = np.random.default_rng(seed)
    n_delivered = len(payloads)
    done = 0
    for start in range(0, sizes.generations, CHUNK):
        n = min(CHUNK, sizes.generations - start)
        index = np.arange(start, start + n, dtype=np.int64)
        is_delivered = index < n_delivered
        status = np.where(is_delivered, 0, np.where(index % 3 == 0, 2, 1))
        engine = rng.integers(0, 2, n)
        parts = []
        for s, status_name in enumerate(("delivered", "refused", "violation")):
            for e, engine_name in enumerate(ENGINES):
                pick = index[(status == s) & (engine == e)]
                if len(pick):
                    pay = payloads[pick] if s == 0 else pick * 0 - 1
                    parts.append(generation_rows(sizes, pick, pay, seed + start + 7 * s + e,
                                                 status_name, engine_name))  # fmt: skip
        done += n
        yield Block("generations", GENERATION_COLUMNS, b"".join(parts))


# --- loading --------------------------------------------------------------------------------------


def libpq_url(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def catalog(conn: psycopg.Connection[Any]) -> list[tuple[str, str, str]]:
    """Every constraint and index definition in the public schema, sorted."""
    rows = conn.execute(
        "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE connamespace = 'public'::regnamespace "
        "UNION ALL SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'"
    ).fetchall()
    return sorted((str(a), str(b), str(c)) for a, b, c in rows)


def drop_for_load(conn: psycopg.Connection[Any]) -> list[str]:
    """Drop every FK and the bulk tables' keys and indexes; the statements that restore them."""
    fks = conn.execute(
        "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE connamespace = 'public'::regnamespace AND contype = 'f'"
    ).fetchall()
    keys = conn.execute(
        "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE connamespace = 'public'::regnamespace AND contype IN ('p', 'u') "
        "AND conrelid::regclass::text = ANY(%s)",
        (list(BULK_TABLES),),
    ).fetchall()
    key_names = {name for _, name, _ in keys}
    indexes = conn.execute(
        "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' "
        "AND tablename = ANY(%s)",
        (list(BULK_TABLES),),
    ).fetchall()
    indexes = [i for i in indexes if i[1] not in key_names]
    for table, name, _ in fks:
        conn.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
    for table, name, _ in keys:
        conn.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
    for _, name, _ in indexes:
        conn.execute(f'DROP INDEX "{name}"')
    conn.commit()
    return (
        [f'ALTER TABLE {t} ADD CONSTRAINT "{n}" {d}' for t, n, d in keys]
        + [d for _, _, d in indexes]
        + [f'ALTER TABLE {t} ADD CONSTRAINT "{n}" {d}' for t, n, d in fks]
    )


class PostgresLoader:
    def __init__(self, url: str) -> None:
        self.conn = psycopg.connect(libpq_url(url))
        self.conn.execute("SET synchronous_commit = off")

    def write(self, block: Block) -> None:
        with (
            self.conn.cursor() as cur,
            cur.copy(
                f"COPY {block.table} ({', '.join(block.columns)}) FROM STDIN",
                writer=QueuedLibpqWriter(cur),
            ) as copy,
        ):
            for s in range(0, len(block.data), 8 << 20):
                copy.write(block.data[s : s + (8 << 20)])
        self.conn.commit()

    def close(self) -> None:
        self.conn.close()


class SqliteLoader:
    """Parses the same COPY text into typed values and inserts through SQLAlchemy Core."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def write(self, block: Block) -> None:
        table: Table = Base.metadata.tables[block.table]
        convert = [_converter(table.c[name].type) for name in block.columns]
        rows = [
            {
                name: None if raw == "\\N" else conv(raw)
                for name, conv, raw in zip(block.columns, convert, line.split("\t"), strict=True)
            }
            for line in block.data.decode().splitlines()
        ]
        with self.engine.begin() as conn:
            conn.execute(insert(table), rows)

    def close(self) -> None:
        pass


def _converter(kind: Any) -> Callable[[str], Any]:
    if isinstance(kind, Boolean):
        return lambda s: s == "t"
    if isinstance(kind, (Integer, BigInteger)):
        return int
    if isinstance(kind, Float):
        return float
    if isinstance(kind, JSON):
        return json.loads
    if isinstance(kind, LargeBinary):
        return lambda s: bytes.fromhex(s[3:])  # "\\x" + hex in COPY text
    if isinstance(kind, UTCDateTime):
        return lambda s: datetime.fromisoformat(s.replace("+00", "+00:00"))
    return str


def load(sizes: Sizes, loader: PostgresLoader | SqliteLoader, space: SpeakerSpace,
         payloads: I64, progress: Callable[[str], None]) -> None:  # fmt: skip
    now_us = int(time.time() * 1_000_000)
    for block in small_tables(sizes, now_us):
        loader.write(block)
    rng = np.random.default_rng(100)
    for start in range(0, sizes.voices, CHUNK):
        n = min(CHUNK, sizes.voices - start)
        for block in registry_chunk(sizes, start, n, space.vectors(rng, n), 1000 + start):
            loader.write(block)
        progress(f"voices {start + n:,}/{sizes.voices:,}")
    for k, block in enumerate(generation_chunks(sizes, payloads, 7)):
        loader.write(block)
        if k % 5 == 4 or (k + 1) * CHUNK >= sizes.generations:
            progress(
                f"generations {min((k + 1) * CHUNK, sizes.generations):,}/{sizes.generations:,}"
            )


def set_counter(engine: Engine, value: int) -> None:
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM counters WHERE name = :n"), {"n": EMBEDDING_SEQ})
        conn.execute(text("INSERT INTO counters (name, value) VALUES (:n, :v)"),
                     {"n": EMBEDDING_SEQ, "v": value})  # fmt: skip


# --- measuring ------------------------------------------------------------------------------------


def rss_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def pct(values: list[float]) -> dict[str, float]:
    a = np.array(values) * 1000.0
    return {"n": len(values), "p50_ms": float(np.percentile(a, 50)),
            "p95_ms": float(np.percentile(a, 95)), "p99_ms": float(np.percentile(a, 99)),
            "mean_ms": float(a.mean())}  # fmt: skip


def measure_trace(engine: Engine, lookups: int, seed: int) -> dict[str, Any]:
    """Payload → full trace for random loaded payloads; and lookups of payloads never issued."""
    sessions = make_sessionmaker(engine)
    with engine.connect() as conn:
        picks = conn.scalars(
            select(Generation.watermark_payload)
            .where(Generation.watermark_payload.is_not(None))
            .order_by(func.random())
            .limit(lookups + 20)
        ).all()
    timings: list[float] = []
    lookup: list[float] = []
    for k, payload in enumerate(picks):
        started = time.perf_counter()
        with transaction(sessions) as s:
            gen = s.scalar(select(Generation).where(Generation.watermark_payload == payload))
            found_at = time.perf_counter()
            assert gen is not None, f"payload {payload} was loaded but not found"
            found = trace.trace_generation(s, gen)
        if k >= 20:  # the first lookups warm the pool and the ORM's compiled-statement cache
            timings.append(time.perf_counter() - started)
            lookup.append(found_at - started)
        assert found["consent"] is not None and len(found["consent"]["events"]) == 2
        assert found["voice"]["speaker"] is not None and found["api_key"] is not None
    # Random 32-bit values: about 1 in 400 is a real payload at 10M rows; those are not counted.
    missing: list[float] = []
    for payload in np.random.default_rng(seed).integers(0, 2**32, lookups):
        started = time.perf_counter()
        with transaction(sessions) as s:
            gen = s.scalar(select(Generation).where(Generation.watermark_payload == int(payload)))
        if gen is None:
            missing.append(time.perf_counter() - started)
    return {"trace": pct(timings), "trace_payload_lookup": pct(lookup),
            "unknown_payload": pct(missing)}  # fmt: skip


def measure_search(engine: Engine, space: SpeakerSpace, queries: int, exact_queries: int,
                   params: IndexParams, sweep: list[int], seed: int) -> dict[str, Any]:  # fmt: skip
    """Index build, ``nearest`` timings and recall@10 against exact search (and an nprobe sweep).

    Queries alternate between a registered voice heard again (its centroid plus noise, cosine
    ≈ 0.9 to it) and an unregistered speaker drawn from the same space.
    """
    sessions = make_sessionmaker(engine)
    rng = np.random.default_rng(seed)
    half = queries // 2
    with transaction(sessions) as s:
        stored = s.scalars(select(VoiceEmbedding.vector).order_by(func.random()).limit(half)).all()
    near = np.stack([fingerprints.from_bytes(v) for v in stored])
    near += rng.standard_normal(near.shape).astype(np.float32) * np.float32(0.5 / math.sqrt(DIM))
    qs = np.empty((len(near) + queries - half, DIM), dtype=np.float32)
    qs[0 : 2 * len(near) : 2] = near
    qs[1 : 2 * len(near) : 2] = space.vectors(rng, len(near))
    qs[2 * len(near) :] = space.vectors(rng, len(qs) - 2 * len(near))
    qs /= np.linalg.norm(qs, axis=1, keepdims=True)

    def run_queries(batch: npt.NDArray[np.float32]) -> tuple[list[list[str]], list[float]]:
        got, timings = [], []
        for q in batch:
            started = time.perf_counter()
            with transaction(sessions) as s:
                found = fingerprints.nearest(s, q, encoder=ENCODER, kind="centroid", top_k=10)
            timings.append(time.perf_counter() - started)
            got.append([m.embedding_id for m in found])
        return got, timings

    out: dict[str, Any] = {}
    index = indexes_for(engine, params).get("centroid", ENCODER)
    before = rss_bytes()
    index.ensure_built(engine)
    out["index"] = {**index.stats().__dict__, "rss_growth_bytes": rss_bytes() - before}
    got, timings = run_queries(qs)
    out["search"] = pct(timings)

    exact = SpeakerIndex("centroid", ENCODER, IndexParams(ann_min_rows=None))
    before = rss_bytes()
    exact.ensure_built(engine)
    out["exact_index"] = {**exact.stats().__dict__, "rss_growth_bytes": rss_bytes() - before}
    truth: list[set[str]] = []
    exact_timings: list[float] = []
    for q in qs[:exact_queries]:
        started = time.perf_counter()
        with transaction(sessions) as s:
            truth.append({m.embedding_id for m in exact.search(s, q, top_k=10)})
        exact_timings.append(time.perf_counter() - started)
    del exact
    out["exact_search"] = pct(exact_timings)

    def recall(found: list[list[str]]) -> list[float]:
        return [len(set(f) & t) / 10 for f, t in zip(found, truth, strict=False)]

    r = recall(got)
    out["recall_at_10"] = float(np.mean(r))
    out["recall_at_10_min"] = float(np.min(r))
    out["recall_at_10_registered"] = float(np.mean(r[0::2]))
    out["recall_at_10_unregistered"] = float(np.mean(r[1::2]))
    if index.stats().mode == "ivf":
        out["nprobe_sweep"] = []
        for nprobe in sweep:
            index.set_nprobe(nprobe)
            found, times = run_queries(qs[:exact_queries])
            out["nprobe_sweep"].append(
                {"nprobe": nprobe, "recall_at_10": float(np.mean(recall(found))), **pct(times)}
            )
        index.set_nprobe(params.nprobe)
    return out


def database_size(engine: Engine) -> dict[str, int]:
    if engine.dialect.name == "sqlite":
        path = engine.url.database or ""
        return {"database": os.path.getsize(path) + sum(
            os.path.getsize(path + s) for s in ("-wal", "-shm") if os.path.exists(path + s))}  # fmt: skip
    with engine.connect() as conn:
        sizes = {"database": int(conn.scalar(text("SELECT pg_database_size(current_database())")))}
        for t in ("generations", "voice_embeddings", "consents", "voices"):
            sizes[t] = int(conn.scalar(text(f"SELECT pg_total_relation_size('{t}')")))
    return sizes


# --- driver ---------------------------------------------------------------------------------------


@contextmanager
def database(args: argparse.Namespace) -> Iterator[str]:
    if args.sqlite:
        with tempfile.TemporaryDirectory(prefix="vs-scale-") as tmp:
            yield f"sqlite:///{Path(tmp) / 'registry.db'}"
        return
    server = make_url(args.pg_url)
    admin = create_engine(server, isolation_level="AUTOCOMMIT", poolclass=pool.NullPool)
    name = args.db_name or f"vs_bench_scale_{secrets.token_hex(4)}"
    with admin.connect() as conn:
        exists = conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name})
        if not (args.reuse and exists):
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        if not args.keep:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def loaded_sizes(engine: Engine) -> Sizes:
    with engine.connect() as conn:
        voices = conn.scalar(select(func.count()).select_from(VoiceEmbedding))
        generations = conn.scalar(select(func.count()).select_from(Generation))
    return Sizes(int(voices or 0), int(generations or 0))


def load_registry(args: argparse.Namespace, url: str, engine: Engine, sizes: Sizes,
                  space: SpeakerSpace, payloads: I64,
                  progress: Callable[[str], None]) -> dict[str, Any]:  # fmt: skip
    """Bulk-load the synthetic registry into the migrated, empty database; the load figures."""
    started = time.perf_counter()
    restore_seconds = 0.0
    if args.sqlite:
        load(sizes, SqliteLoader(engine), space, payloads, progress)
    else:
        pg = PostgresLoader(url)
        before = catalog(pg.conn)
        restore = drop_for_load(pg.conn)
        load(sizes, pg, space, payloads, progress)
        copied = time.perf_counter()
        pg.conn.execute("SET maintenance_work_mem = '1GB'")
        for stmt in restore:
            pg.conn.execute(stmt)  # type: ignore[arg-type]
            pg.conn.commit()
        progress(f"keys, indexes and foreign keys restored in {time.perf_counter() - copied:.0f}s")
        if catalog(pg.conn) != before:
            raise RuntimeError("the restored constraints and indexes differ from Alembic's")
        pg.conn.commit()
        pg.conn.autocommit = True
        pg.conn.execute("VACUUM (ANALYZE)")
        restore_seconds = time.perf_counter() - copied
        pg.close()
    set_counter(engine, sizes.voices)
    alembic_check(url)
    return {
        "load_seconds": time.perf_counter() - started,
        "index_rebuild_seconds": restore_seconds,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    sizes = Sizes(args.voices, args.generations)
    started = time.perf_counter()

    def progress(msg: str) -> None:
        print(f"[{time.perf_counter() - started:7.1f}s] {msg}", file=sys.stderr, flush=True)

    result: dict[str, Any] = {
        "backend": "sqlite" if args.sqlite else "postgresql",
        "voices": sizes.voices, "generations": sizes.generations, "tenants": sizes.tenants,
        "cpus": os.cpu_count(), "python": host.python_version(),
    }  # fmt: skip
    space = speaker_space(42)
    payloads = unique_payloads(np.random.default_rng(9), sizes.generations * 97 // 100)
    with database(args) as url:
        upgrade(url)
        engine = make_engine(url)
        try:
            if args.reuse and loaded_sizes(engine) == sizes:
                progress("reusing the loaded database (--reuse): no load figures")
                result.update(load_seconds=None, index_rebuild_seconds=None)
            else:
                progress("schema made by alembic upgrade head; loading")
                result.update(load_registry(args, url, engine, sizes, space, payloads, progress))
            result["size_bytes"] = database_size(engine)
            progress("loaded; measuring trace lookups")
            result.update(measure_trace(engine, args.lookups, 1))
            progress("measuring speaker search")
            params = IndexParams(nprobe=args.nprobe)
            result.update(measure_search(engine, space, args.queries, args.exact_queries,
                                         params, args.sweep, 2))  # fmt: skip
        finally:
            engine.dispose()
    result["wall_seconds"] = time.perf_counter() - started
    return result


def table(r: dict[str, Any]) -> str:
    gib = 1024**3
    idx, ex = r["index"], r["exact_index"]
    rows = [
        ("backend", r["backend"]),
        ("voices (centroids) / generations", f"{r['voices']:,} / {r['generations']:,}"),
        ("bulk load (incl. key/index rebuild)",
         f"{r['load_seconds']:.0f} s ({r['index_rebuild_seconds']:.0f} s)" if r["load_seconds"] is not None else "reused"),
        ("database size", f"{r['size_bytes']['database'] / gib:.2f} GiB"),
        ("trace p50 / p95 / p99", "{p50_ms:.2f} / {p95_ms:.2f} / {p99_ms:.2f} ms".format(**r["trace"])),
        ("  of which payload → generation row p50 / p95", "{p50_ms:.2f} / {p95_ms:.2f} ms".format(**r["trace_payload_lookup"])),
        ("unknown payload p50 / p95", "{p50_ms:.2f} / {p95_ms:.2f} ms".format(**r["unknown_payload"])),
        (f"speaker index ({idx['mode']}, cells {idx['cells']}, nprobe {idx['nprobe']})",
         f"build {idx['build_seconds']:.1f} s, vectors {idx['vector_bytes'] / gib:.2f} GiB, RSS +{idx['rss_growth_bytes'] / gib:.2f} GiB"),
        ("speaker search top-10 p50 / p95", "{p50_ms:.2f} / {p95_ms:.2f} ms".format(**r["search"])),
        ("exact search top-10 p50 / p95", "{p50_ms:.2f} / {p95_ms:.2f} ms".format(**r["exact_search"])),
        ("exact index build", f"{ex['build_seconds']:.1f} s, RSS +{ex['rss_growth_bytes'] / gib:.2f} GiB"),
        ("recall@10 of the index (mean / min)", f"{r['recall_at_10']:.4f} / {r['recall_at_10_min']:.2f}"),
        ("recall@10 registered / unregistered voices", f"{r['recall_at_10_registered']:.4f} / {r['recall_at_10_unregistered']:.4f}"),
        *[(f"  nprobe {p['nprobe']}: recall@10, p50 / p95", f"{p['recall_at_10']:.4f}, {p['p50_ms']:.2f} / {p['p95_ms']:.2f} ms")
          for p in r.get("nprobe_sweep", [])],
        ("wall time", f"{r['wall_seconds']:.0f} s"),
    ]  # fmt: skip
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--voices", type=int, default=None, help="voices (default 1,000,000; 2,000 with --sqlite)"
    )
    ap.add_argument(
        "--generations", type=int, default=None, help="default 10,000,000; 20,000 with --sqlite"
    )
    ap.add_argument(
        "--sqlite", action="store_true", help="a temporary SQLite file instead of PostgreSQL"
    )
    ap.add_argument(
        "--pg-url",
        default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
        help="server to create the bench database on",
    )
    ap.add_argument("--db-name", default="vs_bench_scale")
    ap.add_argument("--keep", action="store_true", help="keep the database afterwards")
    ap.add_argument(
        "--reuse",
        action="store_true",
        help="measure an existing --db-name database loaded at these sizes instead of reloading",
    )
    ap.add_argument("--lookups", type=int, default=500, help="trace lookups to time")
    ap.add_argument("--queries", type=int, default=300, help="speaker searches to time")
    ap.add_argument(
        "--exact-queries", type=int, default=100, help="of those, compared with exact search"
    )
    ap.add_argument("--nprobe", type=int, default=IndexParams().nprobe)
    ap.add_argument(
        "--sweep",
        type=lambda v: [int(x) for x in v.split(",") if x],
        default=[8, 16, 32, 64, 128],
        help="nprobe values to sweep (recall and latency on the exact-compared queries)",
    )
    ap.add_argument("--json", type=Path, help="write the figures here")
    args = ap.parse_args()  # fmt: skip
    args.voices = args.voices or (2_000 if args.sqlite else 1_000_000)
    args.generations = args.generations or (20_000 if args.sqlite else 10_000_000)
    if args.voices < 20 or args.generations < 100:
        ap.error("need at least 20 voices and 100 generations")
    result = run(args)
    print(table(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
