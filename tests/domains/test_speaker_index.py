"""Speaker search (``voices.fingerprints.nearest``) against exact search, on SQLite and PostgreSQL.

Uses the shared ``engine`` and ``session_factory`` fixtures (tests/conftest.py): every test runs
on a migrated SQLite file and on PostgreSQL.

The registry is the truth; the per-engine cache must give the answers a full scan of the rows would
give, follow inserts made after it was built (committed or the caller's own), and never return a
deleted row.
"""

from __future__ import annotations

import gc
import weakref
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import Engine, delete, func, select, text
from sqlalchemy.orm import Session, sessionmaker

from voiceseal.kit.db import make_engine, make_sessionmaker, transaction
from voiceseal.kit.migrate import upgrade
from voiceseal.registry.models import ProtectedVoice, Speaker, Voice, VoiceEmbedding
from voiceseal.voices import fingerprints
from voiceseal.voices.fingerprints import IndexParams, indexes_for, nearest

#: Forces the IVF path on tiny sets and probes every cell, which makes it exact: the IVF
#: bookkeeping (labels, incremental adds, removals) must then agree with exact search too.
EXHAUSTIVE_IVF = IndexParams(ann_min_rows=1, nprobe=1_000_000, cells_per_sqrt_row=1.0)


@dataclass
class Stored:
    ids: list[str]
    voice_ids: list[str | None]
    protected_ids: list[str | None]
    vectors: np.ndarray


def unit(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    v = rng.standard_normal((n, dim)).astype(np.float32)
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def add_centroids(session: Session, vectors: np.ndarray, encoder: str) -> Stored:
    """One speaker, voice and centroid row per vector."""
    speakers = [Speaker(name=f"s{i}") for i in range(len(vectors))]
    session.add_all(speakers)
    session.flush()
    voices = [
        Voice(name=f"v{i}", speaker_id=s.id, engine="reference") for i, s in enumerate(speakers)
    ]
    session.add_all(voices)
    session.flush()
    rows = [
        VoiceEmbedding(kind="centroid", voice_id=v.id, encoder=encoder, encoder_version="1",
                       dim=vectors.shape[1], vector=fingerprints.to_bytes(vec))
        for v, vec in zip(voices, vectors, strict=True)
    ]  # fmt: skip
    session.add_all(rows)
    session.flush()
    return Stored([r.id for r in rows], [v.id for v in voices], [None] * len(rows), vectors)


def add_protected(session: Session, vectors: np.ndarray, encoder: str) -> Stored:
    pvs = [ProtectedVoice(name=f"p{i}") for i in range(len(vectors))]
    session.add_all(pvs)
    session.flush()
    rows = [
        VoiceEmbedding(kind="protected", protected_voice_id=p.id, encoder=encoder,
                       encoder_version="1", dim=vectors.shape[1],
                       vector=fingerprints.to_bytes(vec))
        for p, vec in zip(pvs, vectors, strict=True)
    ]  # fmt: skip
    session.add_all(rows)
    session.flush()
    return Stored([r.id for r in rows], [None] * len(rows), [p.id for p in pvs], vectors)


def exact(stored: Stored, q: np.ndarray, top_k: int, exclude: tuple[str, ...] = ()) -> list[str]:
    sims = stored.vectors @ q
    order = sorted(range(len(stored.ids)), key=lambda i: (-float(sims[i]), stored.ids[i]))
    return [stored.ids[i] for i in order if stored.voice_ids[i] not in exclude][:top_k]


def ids(matches: list[fingerprints.Match]) -> list[str]:
    return [m.embedding_id for m in matches]


@pytest.mark.parametrize("params", [None, EXHAUSTIVE_IVF], ids=["exact", "ivf"])
def test_results_equal_exact_search(
    engine: Engine, session_factory: sessionmaker[Session], params: IndexParams | None
) -> None:
    rng = np.random.default_rng(7)
    if params is not None:
        indexes_for(engine, params)
    with transaction(session_factory) as s:
        a = add_centroids(s, unit(rng, 300, 64), "enc-a")
        b = add_centroids(s, unit(rng, 40, 7), "enc-b")
        p = add_protected(s, unit(rng, 30, 64), "enc-a")
    with transaction(session_factory) as s:
        for _ in range(8):
            qa = unit(rng, 1, 64)[0]
            exclude = tuple(rng.choice(a.voice_ids, 5, replace=False))  # type: ignore[arg-type]
            got = nearest(s, qa, encoder="enc-a", kind="centroid", top_k=10,
                          exclude_voice_ids=exclude)  # fmt: skip
            assert ids(got) == exact(a, qa, 10, exclude)
            sims = [m.similarity for m in got]
            assert sims == sorted(sims, reverse=True)
            assert sims[0] == pytest.approx(float(np.max(a.vectors @ qa)), abs=1e-6) or (
                a.voice_ids[int(np.argmax(a.vectors @ qa))] in exclude
            )
            got_p = nearest(s, qa, encoder="enc-a", kind="protected", top_k=3)
            assert ids(got_p) == exact(p, qa, 3)
            assert all(m.voice_id is None and m.protected_voice_id for m in got_p)
            qb = unit(rng, 1, 7)[0]
            assert ids(nearest(s, qb, encoder="enc-b", kind="centroid", top_k=50)) == exact(
                b, qb, 50
            )
        # Excluding the best voices of a query still fills top_k from the rest.
        q = a.vectors[0]
        best = exact(a, q, 20)
        excluded = tuple(a.voice_ids[a.ids.index(e)] for e in best[:15])  # type: ignore[misc]
        assert ids(nearest(s, q, encoder="enc-a", kind="centroid", top_k=5,
                           exclude_voice_ids=excluded)) == best[15:20]  # fmt: skip
        assert nearest(s, q, encoder="nobody", kind="centroid") == []


@pytest.mark.parametrize("params", [None, EXHAUSTIVE_IVF], ids=["exact", "ivf"])
def test_catches_up_with_rows_committed_after_the_build(
    engine: Engine, session_factory: sessionmaker[Session], params: IndexParams | None
) -> None:
    rng = np.random.default_rng(11)
    if params is not None:
        indexes_for(engine, params)
    with transaction(session_factory) as s:
        first = add_centroids(s, unit(rng, 50, 32), "enc")
    q = unit(rng, 1, 32)[0]
    with transaction(session_factory) as s:
        assert ids(nearest(s, q, encoder="enc", kind="centroid", top_k=5)) == exact(first, q, 5)
    for _ in range(3):
        with transaction(session_factory) as s:
            # A near copy of the query, committed after the cache was built, must win.
            added = add_centroids(s, (q + 0.01 * unit(rng, 1, 32))[None, 0], "enc")
        with transaction(session_factory) as s:
            top = nearest(s, q, encoder="enc", kind="centroid", top_k=1)
        assert ids(top) == added.ids
    assert indexes_for(engine).get("centroid", "enc").stats().rows == 53


def test_own_uncommitted_rows_are_seen_by_their_session_only(
    engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    rng = np.random.default_rng(3)
    with transaction(session_factory) as s:
        base = add_centroids(s, unit(rng, 20, 16), "enc")
    q = unit(rng, 1, 16)[0]
    with transaction(session_factory) as s:
        nearest(s, q, encoder="enc", kind="centroid")  # build the cache
    writer = session_factory()
    try:
        mine = add_centroids(writer, q[None, :], "enc")
        assert ids(nearest(writer, q, encoder="enc", kind="centroid", top_k=1)) == mine.ids
    finally:
        writer.rollback()
        writer.close()
    # The rolled-back row's seq is handed out again: the cache must not have counted it as seen.
    with transaction(session_factory) as s:
        again = add_centroids(s, q[None, :], "enc")
    with transaction(session_factory) as s:
        assert ids(nearest(s, q, encoder="enc", kind="centroid", top_k=2)) == [
            *again.ids,
            exact(base, q, 1)[0],
        ]


@pytest.mark.parametrize("params", [None, EXHAUSTIVE_IVF], ids=["exact", "ivf"])
def test_deleted_rows_are_never_returned(
    engine: Engine, session_factory: sessionmaker[Session], params: IndexParams | None
) -> None:
    rng = np.random.default_rng(5)
    if params is not None:
        indexes_for(engine, params)
    with transaction(session_factory) as s:
        stored = add_centroids(s, unit(rng, 60, 24), "enc")
    q = unit(rng, 1, 24)[0]
    ranked = exact(stored, q, 60)
    with transaction(session_factory) as s:
        assert ids(nearest(s, q, encoder="enc", kind="centroid", top_k=3)) == ranked[:3]
    with transaction(session_factory) as s:
        s.execute(delete(VoiceEmbedding).where(VoiceEmbedding.id.in_(ranked[:2])))
    with transaction(session_factory) as s:
        assert ids(nearest(s, q, encoder="enc", kind="centroid", top_k=3)) == ranked[2:5]
    index = indexes_for(engine).get("centroid", "enc")
    assert index.stats().rows == 58
    # Deleted by the caller's own open transaction: hidden from it, kept for everyone else.
    deleter = session_factory()
    try:
        deleter.execute(delete(VoiceEmbedding).where(VoiceEmbedding.id == ranked[2]))
        assert ids(nearest(deleter, q, encoder="enc", kind="centroid", top_k=2)) == ranked[3:5]
        with transaction(session_factory) as other:
            assert ids(nearest(other, q, encoder="enc", kind="centroid", top_k=1)) == [ranked[2]]
    finally:
        deleter.rollback()
        deleter.close()
    assert index.stats().rows == 58
    with transaction(session_factory) as s:
        assert s.scalar(select(func.count()).select_from(VoiceEmbedding)) == 58


def test_grows_from_exact_to_ivf_and_keeps_results(
    engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    rng = np.random.default_rng(13)
    indexes_for(engine, IndexParams(ann_min_rows=100, nprobe=1_000_000))
    with transaction(session_factory) as s:
        first = add_centroids(s, unit(rng, 80, 16), "enc")
    q = unit(rng, 1, 16)[0]
    index = indexes_for(engine).get("centroid", "enc")
    with transaction(session_factory) as s:
        assert ids(nearest(s, q, encoder="enc", kind="centroid", top_k=10)) == exact(first, q, 10)
    assert index.stats().mode == "exact"
    with transaction(session_factory) as s:
        more = add_centroids(s, unit(rng, 40, 16), "enc")
    both = Stored(first.ids + more.ids, first.voice_ids + more.voice_ids,
                  first.protected_ids + more.protected_ids,
                  np.concatenate([first.vectors, more.vectors]))  # fmt: skip
    with transaction(session_factory) as s:
        assert ids(nearest(s, q, encoder="enc", kind="centroid", top_k=10)) == exact(both, q, 10)
    stats = index.stats()
    assert (stats.mode, stats.rows, stats.dim) == ("ivf", 120, 16)


def test_bad_queries_are_refused(session_factory: sessionmaker[Session]) -> None:
    rng = np.random.default_rng(1)
    with transaction(session_factory) as s:
        add_centroids(s, unit(rng, 5, 8), "enc")
    with transaction(session_factory) as s:
        with pytest.raises(ValueError, match="have dim 8, query has 9"):
            nearest(s, unit(rng, 1, 9)[0], encoder="enc", kind="centroid")
        with pytest.raises(ValueError, match="one non-empty vector"):
            nearest(s, unit(rng, 2, 8), encoder="enc", kind="centroid")
        with pytest.raises(ValueError, match="finite"):
            nearest(s, np.full(8, np.nan, dtype=np.float32), encoder="enc", kind="centroid")
        with pytest.raises(ValueError, match="top_k must be at least 1"):
            nearest(s, unit(rng, 1, 8)[0], encoder="enc", kind="centroid", top_k=0)
    with pytest.raises(ValueError, match="nprobe"):
        IndexParams(nprobe=0)


def test_caches_belong_to_their_engine(database_url: str) -> None:
    rng = np.random.default_rng(2)
    first = make_engine(database_url)
    with transaction(make_sessionmaker(first)) as s:
        stored = add_centroids(s, unit(rng, 10, 8), "enc")
        q = unit(rng, 1, 8)[0]
        assert ids(nearest(s, q, encoder="enc", kind="centroid", top_k=3)) == exact(stored, q, 3)
    assert first in fingerprints._ENGINE_INDEXES
    # Another engine on the same database builds its own cache from the rows, with equal answers.
    second = make_engine(database_url)
    with transaction(make_sessionmaker(second)) as s:
        assert ids(nearest(s, q, encoder="enc", kind="centroid", top_k=3)) == exact(stored, q, 3)
    assert indexes_for(first) is not indexes_for(second)
    # The cache must not keep its engine alive: it goes with it.
    gone = weakref.ref(first)
    first.dispose()
    del first, s
    gc.collect()
    assert gone() is None
    assert all(engine is not None for engine in fingerprints._ENGINE_INDEXES)
    assert second in fingerprints._ENGINE_INDEXES
    second.dispose()


def test_migration_numbers_existing_rows_in_creation_order(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    upgrade(url, "978d9808101b")  # the revision before voice_embeddings.seq
    eng = make_engine(url)
    try:
        with eng.begin() as conn:
            conn.execute(text("INSERT INTO protected_voices (id, name, reason, created_at) "
                              "VALUES ('pv_1', 'p', '', '2026-01-01 00:00:00')"))  # fmt: skip
            for i, day in enumerate((3, 1, 2)):
                conn.execute(
                    text("INSERT INTO voice_embeddings (id, kind, protected_voice_id, encoder, "
                         "encoder_version, dim, vector, created_at) VALUES (:id, 'protected', "
                         "'pv_1', 'enc', '1', 1, :v, :at)"),
                    {"id": f"emb_{i}", "v": b"\x00\x00\x80?", "at": f"2026-01-0{day} 00:00:00"},
                )  # fmt: skip
        upgrade(url)
        with eng.begin() as conn:
            numbered = conn.execute(text("SELECT id, seq FROM voice_embeddings ORDER BY seq"))
            assert [tuple(r) for r in numbered] == [("emb_1", 1), ("emb_2", 2), ("emb_0", 3)]
        with transaction(make_sessionmaker(eng)) as s:
            pv = ProtectedVoice(name="new")
            s.add(pv)
            s.flush()
            s.add(VoiceEmbedding(kind="protected", protected_voice_id=pv.id, encoder="enc",
                                 encoder_version="1", dim=1, vector=b"\x00\x00\x80?"))  # fmt: skip
        with transaction(make_sessionmaker(eng)) as s:
            assert s.scalar(select(func.max(VoiceEmbedding.seq))) == 4
            hits = nearest(
                s, np.ones(1, dtype=np.float32), encoder="enc", kind="protected", top_k=9
            )
            # The three migrated rows and the new one (whose id is random: compare as a set).
            assert {"emb_0", "emb_1", "emb_2"} <= {m.embedding_id for m in hits}
            assert len(hits) == 4
    finally:
        eng.dispose()
