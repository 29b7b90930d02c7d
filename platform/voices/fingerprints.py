"""Speaker vectors: storage format, centroids and nearest-neighbour search.

Vectors are L2-normalised float32, so cosine similarity is a dot product.

Search runs over a per-process cache of one kind's vectors (:class:`SpeakerIndex`). The registry
stays the source of truth:

- the cache catches up with ``voice_embeddings.seq``, which is handed out in commit order with no
  gaps (``registry.models.Counter``), so "every committed row with ``seq > n``" is exactly what a
  cache that has seen up to ``n`` lacks; it reads committed rows on a connection of its own, so a
  caller's uncommitted rows never enter it (they are searched for that caller only);
- the cache only proposes candidates: every answer is re-read and re-scored from the rows in the
  caller's session, so a deleted row is never returned and a score is never stale; a row found
  deleted (on a committed read) is dropped from the cache.

Small sets (below ``IndexParams.ann_min_rows``) are searched exactly. Large ones go through a faiss
IVF-Flat index: spherical k-means cells, exact inner products inside the ``nprobe`` cells nearest
the query. bench/registry_scale.py chose it: at 1,000,000 × 256 on two cores exact search misses
the 50 ms target several times over, and HNSW (hnswlib, usearch) takes ten to twenty times longer
to build than IVF for the same recall.

Caches are held per SQLAlchemy ``Engine`` in a weak dictionary: they live exactly as long as the
engine, two engines on one database keep separate caches, and a process with no cache at all
answers the same (DESIGN.md §7: nothing here is a source of truth).
"""

from __future__ import annotations

import math
import threading
import time
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import Connection, Engine, Row, create_engine, func, select
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from voiceseal.registry.models import VoiceEmbedding

Vector = npt.NDArray[np.float32]


def to_bytes(v: Vector) -> bytes:
    return np.asarray(v, dtype="<f4").tobytes()


def from_bytes(b: bytes) -> Vector:
    return np.frombuffer(b, dtype="<f4").astype(np.float32)


def normalize(v: npt.NDArray[np.floating]) -> Vector:
    n = float(np.linalg.norm(v))
    if not np.isfinite(n) or n == 0.0:
        raise ValueError("cannot normalise a zero or non-finite speaker vector")
    return (np.asarray(v, dtype=np.float64) / n).astype(np.float32)


def centroid(vectors: list[Vector]) -> Vector:
    return normalize(np.mean(np.stack(vectors), axis=0))


def cosine(a: Vector, b: Vector) -> float:
    return float(np.dot(a.astype(np.float64), b.astype(np.float64)))


@dataclass(frozen=True)
class Match:
    embedding_id: str
    voice_id: str | None
    protected_voice_id: str | None
    similarity: float


@dataclass(frozen=True)
class IndexParams:
    """How a :class:`SpeakerIndex` searches. The defaults are the scale bench's choice."""

    #: Rows from which the IVF index replaces exact search; None keeps search exact at any size.
    ann_min_rows: int | None = 50_000
    #: IVF cells probed per query: recall against speed (see bench/registry_scale.py).
    nprobe: int = 32
    #: IVF cells = this × √rows (4,000 cells at 1M rows; faiss advises 4 to 16 × √rows).
    cells_per_sqrt_row: float = 4.0
    #: k-means training points per cell (faiss wants at least 39).
    train_points_per_cell: int = 40
    #: k-means iterations when training the cells.
    train_iterations: int = 10
    #: Rebuild (retrain the cells) once the index has grown this many times past its training.
    rebuild_growth: float = 4.0

    def __post_init__(self) -> None:
        if self.ann_min_rows is not None and self.ann_min_rows < 1:
            raise ValueError(f"ann_min_rows must be at least 1 or None, not {self.ann_min_rows}")
        if self.nprobe < 1:
            raise ValueError(f"nprobe must be at least 1, not {self.nprobe}")
        if self.cells_per_sqrt_row <= 0:
            raise ValueError(f"cells_per_sqrt_row must be positive, not {self.cells_per_sqrt_row}")
        if self.train_points_per_cell < 1 or self.train_iterations < 1:
            raise ValueError("train_points_per_cell and train_iterations must be at least 1")
        if self.rebuild_growth <= 1.0:
            raise ValueError(f"rebuild_growth must exceed 1, not {self.rebuild_growth}")


@dataclass(frozen=True)
class IndexStats:
    kind: str
    encoder: str
    mode: str  # "empty", "exact" or "ivf"
    rows: int
    dim: int | None
    cells: int | None
    nprobe: int | None
    #: Bytes held by the vectors and the index structures (the id lists come on top).
    vector_bytes: int
    build_seconds: float | None


@dataclass
class _Candidate:
    embedding_id: str
    voice_id: str | None
    protected_voice_id: str | None


_ROW_COLUMNS = (
    VoiceEmbedding.seq,
    VoiceEmbedding.id,
    VoiceEmbedding.voice_id,
    VoiceEmbedding.protected_voice_id,
    VoiceEmbedding.vector,
)
_STREAM_ROWS = 20_000
#: Search rounds before giving up on filling ``top_k`` (each round widens the candidate set 4×).
_MAX_ROUNDS = 8


@dataclass
class _Store:
    """The cached rows of one (kind, encoder): parallel lists indexed by label (insertion order)."""

    dim: int | None = None
    hwm: int = 0
    ids: list[str] = field(default_factory=list)
    voice_ids: list[str | None] = field(default_factory=list)
    protected_ids: list[str | None] = field(default_factory=list)
    dead: set[int] = field(default_factory=set)
    #: Exact mode: vectors by label (rows past ``len(ids)`` are spare capacity).
    matrix: Vector | None = None
    ivf: Any = None
    trained_rows: int = 0
    built: bool = False
    build_seconds: float | None = None

    @property
    def alive(self) -> int:
        return len(self.ids) - len(self.dead)


class SpeakerIndex:
    """Nearest stored vectors of one ``kind`` and ``encoder``, cached for one engine's database.

    Thread-safe: the in-memory structures are guarded by a lock; database reads run outside it.
    """

    def __init__(self, kind: str, encoder: str, params: IndexParams | None = None) -> None:
        self.kind = kind
        self.encoder = encoder
        self.params = params or IndexParams()
        self._lock = threading.Lock()
        self._build_lock = threading.Lock()
        self._store = _Store()
        self._reader: Engine | None = None

    def _committed(self, engine: Engine) -> Connection:
        """A connection apart from the caller's session and from ``engine``'s pool.

        Apart from the session: it must see committed rows only. Apart from the pool: every
        request may hold a pooled connection while it searches, so waiting for a second one from
        the same pool could wait forever. Opened rarely (builds, catching up, deletions).
        """
        reader = self._reader
        if reader is None or reader.url != engine.url:
            reader = self._reader = create_engine(engine.url, poolclass=NullPool)
        return reader.connect()

    # --- public ----------------------------------------------------------------------------

    def search(
        self,
        session: Session,
        query: Vector,
        *,
        top_k: int = 10,
        exclude_voice_ids: Sequence[str] = (),
    ) -> list[Match]:
        """The ``top_k`` most similar rows visible to ``session``, best first (ties by id)."""
        q = _check_query(query)
        if top_k < 1:
            raise ValueError(f"top_k must be at least 1, not {top_k}")
        excluded = frozenset(exclude_voice_ids)
        engine = _engine_of(session)
        self.ensure_built(engine)
        overlay = self._catch_up(session, engine)
        for _ in range(_MAX_ROUNDS):
            candidates, exhausted = self._candidates(q, top_k, excluded)
            rows = self._verify(session, [c.embedding_id for c in candidates])
            missing = [c.embedding_id for c in candidates if c.embedding_id not in rows]
            if missing and self._evict_deleted(engine, missing) and not exhausted:
                # Deleted rows took candidate places: search again without them.
                continue
            found = [
                (r.id, r.voice_id, r.protected_voice_id, r.vector)
                for r in list(rows.values()) + overlay
                if r.voice_id not in excluded
            ]
            return _score(found, q, self.encoder, top_k)
        raise RuntimeError(
            f"speaker search for {self.kind}/{self.encoder} kept finding deleted rows; "
            "the registry is changing faster than the index can follow"
        )

    def ensure_built(self, engine: Engine) -> None:
        """Load every committed row (once per process, and again after heavy growth or deletion)."""
        if self._store.built:
            return
        with self._build_lock:
            if self._store.built:
                return
            started = time.perf_counter()
            store = _Store()
            with self._committed(engine) as conn:
                expected = conn.scalar(
                    select(func.count())
                    .select_from(VoiceEmbedding)
                    .where(VoiceEmbedding.kind == self.kind, VoiceEmbedding.encoder == self.encoder)
                )
                stream = conn.execution_options(stream_results=True, yield_per=_STREAM_ROWS)
                result = stream.execute(self._rows_after(0))
                for chunk in result.partitions():
                    _append(store, chunk, capacity_hint=int(expected or 0))
            self._maybe_train(store)
            store.built = True
            store.build_seconds = time.perf_counter() - started
            with self._lock:
                self._store = store

    def set_nprobe(self, nprobe: int) -> None:
        """Probe this many IVF cells from now on (a live recall/speed trade; no rebuild)."""
        if nprobe < 1:
            raise ValueError(f"nprobe must be at least 1, not {nprobe}")
        with self._lock:
            self.params = replace(self.params, nprobe=nprobe)
            if self._store.ivf is not None:
                self._store.ivf.nprobe = min(nprobe, int(self._store.ivf.nlist))

    def stats(self) -> IndexStats:
        with self._lock:
            s = self._store
            cells: int | None = None
            nprobe: int | None = None
            if s.ivf is not None:
                mode, cells, nprobe = "ivf", int(s.ivf.nlist), int(s.ivf.nprobe)
                nbytes = int(s.ivf.ntotal) * ((s.dim or 0) * 4 + 8) + cells * (s.dim or 0) * 4
            else:
                mode = "exact" if s.ids else "empty"
                nbytes = int(s.matrix.nbytes) if s.matrix is not None else 0
            return IndexStats(
                self.kind, self.encoder, mode, s.alive, s.dim, cells, nprobe, nbytes,
                s.build_seconds,
            )  # fmt: skip

    # --- catching up -----------------------------------------------------------------------

    def _rows_after(self, seq: int) -> Any:
        return (
            select(*_ROW_COLUMNS)
            .where(
                VoiceEmbedding.kind == self.kind,
                VoiceEmbedding.encoder == self.encoder,
                VoiceEmbedding.seq > seq,
            )
            .order_by(VoiceEmbedding.seq)
        )

    def _catch_up(self, session: Session, engine: Engine) -> list[Row[Any]]:
        """Bring the cache up to the committed rows; the session's own extra rows, uncached."""
        hwm = self._store.hwm
        delta = session.execute(self._rows_after(hwm)).all()
        if not delta:
            return []
        # The session sees rows the cache lacks: cache those that are committed (read apart from
        # the session, whose own inserts may still roll back and give their seq to another row).
        with self._committed(engine) as conn:
            committed = conn.execute(self._rows_after(hwm)).all()
        with self._lock:
            store = self._store
            _append(store, [r for r in committed if r.seq > store.hwm], capacity_hint=0)
            self._maybe_train(store)
            if store.ivf is not None and store.ivf.ntotal >= self.params.rebuild_growth * max(
                store.trained_rows, 1
            ):
                store.built = False  # retrain the cells on the next call
            new_hwm = store.hwm
        return [r for r in delta if r.seq > new_hwm]

    def _maybe_train(self, store: _Store) -> None:
        """Replace exact search by the IVF index once the set is large enough."""
        limit = self.params.ann_min_rows
        if store.ivf is not None or limit is None or store.alive < limit or store.matrix is None:
            return
        labels = np.setdiff1d(
            np.arange(len(store.ids), dtype=np.int64), np.fromiter(store.dead, dtype=np.int64)
        )
        # A view when nothing was deleted: a copy would double the peak memory of a first build.
        vectors = store.matrix[: len(store.ids)] if not store.dead else store.matrix[labels]
        store.ivf = _train_ivf(vectors, labels, self.params)
        store.trained_rows = len(labels)
        store.matrix = None

    # --- searching -------------------------------------------------------------------------

    def _candidates(
        self, q: Vector, top_k: int, excluded: frozenset[str]
    ) -> tuple[list[_Candidate], bool]:
        """At least ``top_k`` live, non-excluded cached rows ranked best by the cache (or all)."""
        with self._lock:
            s = self._store
            if s.dim is not None and q.shape[0] != s.dim:
                raise ValueError(
                    f"stored {self.encoder} vectors have dim {s.dim}, query has {q.shape[0]}"
                )
            total = len(s.ids)
            want = min(total, 2 * top_k + len(excluded) + 8)
            picked: list[_Candidate] = []
            while True:
                labels = _ranked(s, q, want)
                picked = [
                    _Candidate(s.ids[i], s.voice_ids[i], s.protected_ids[i])
                    for i in labels
                    if i not in s.dead and s.voice_ids[i] not in excluded
                ]
                if len(picked) >= top_k or want >= total:
                    return picked, want >= total
                want = min(total, want * 4)

    def _verify(self, session: Session, ids: list[str]) -> dict[str, Any]:
        """The candidates' rows as the caller's session sees them now."""
        if not ids:
            return {}
        rows = session.execute(
            select(*_ROW_COLUMNS).where(
                VoiceEmbedding.id.in_(ids),
                VoiceEmbedding.kind == self.kind,
                VoiceEmbedding.encoder == self.encoder,
            )
        ).all()
        return {r.id: r for r in rows}

    def _evict_deleted(self, engine: Engine, ids: list[str]) -> bool:
        """Drop from the cache the rows that are gone for good (a committed read); any dropped?"""
        with self._committed(engine) as conn:
            present = set(conn.scalars(select(VoiceEmbedding.id).where(VoiceEmbedding.id.in_(ids))))
        gone = set(ids) - present
        if not gone:
            # Invisible to this session only (its own delete, or a snapshot older than the row).
            return False
        with self._lock:
            s = self._store
            labels = [i for i, e in enumerate(s.ids) if e in gone]
            s.dead.update(labels)
            if s.ivf is not None:
                s.ivf.remove_ids(np.array(labels, dtype=np.int64))
            if len(s.dead) > max(1_000, len(s.ids) // 4):
                s.built = False  # compact on the next call
        return True


def _check_query(query: Vector) -> Vector:
    q = np.asarray(query, dtype=np.float32)
    if q.ndim != 1 or q.shape[0] == 0:
        raise ValueError(f"a speaker query must be one non-empty vector, got shape {q.shape}")
    if not np.all(np.isfinite(q)):
        raise ValueError("a speaker query must be finite")
    return np.ascontiguousarray(q)


def _engine_of(session: Session) -> Engine:
    bind = session.get_bind()
    return bind if isinstance(bind, Engine) else bind.engine


def _append(store: _Store, rows: Iterable[Row[Any]], *, capacity_hint: int) -> None:
    """Add rows (ascending ``seq``) to the store's lists and to its matrix or IVF index."""
    rows = list(rows)
    if not rows:
        return
    if store.dim is None:
        store.dim = len(rows[0].vector) // 4
    dim = store.dim
    for r in rows:
        if len(r.vector) != 4 * dim:
            raise ValueError(
                f"voice embedding {r.id} has {len(r.vector) // 4} dimensions where its kind and "
                f"encoder have {dim}; the registry holds inconsistent vectors"
            )
    vectors = np.frombuffer(b"".join(r.vector for r in rows), dtype="<f4").reshape(len(rows), dim)
    first = len(store.ids)
    store.ids.extend(r.id for r in rows)
    store.voice_ids.extend(r.voice_id for r in rows)
    store.protected_ids.extend(r.protected_voice_id for r in rows)
    store.hwm = int(rows[-1].seq)
    if store.ivf is not None:
        store.ivf.add_with_ids(
            np.ascontiguousarray(vectors, dtype=np.float32),
            np.arange(first, first + len(rows), dtype=np.int64),
        )
        return
    needed = first + len(rows)
    if store.matrix is None or store.matrix.shape[0] < needed:
        grown = np.empty((max(needed, capacity_hint, 2 * first, 64), dim), dtype=np.float32)
        if store.matrix is not None:
            grown[:first] = store.matrix[:first]
        store.matrix = grown
    store.matrix[first:needed] = vectors


def _dot(mat: npt.NDArray[np.float32], q: Vector) -> npt.NDArray[np.float32]:
    # Not ``mat @ q``: once faiss is loaded, its OpenMP threads spin between calls and each BLAS
    # matrix-vector product waits for a core (8 ms for 2,000 × 256 on two cores, measured);
    # einsum runs its own single-threaded loop (0.06 ms there).
    return np.einsum("ij,j->i", mat, q)


def _train_ivf(vectors: Vector, labels: npt.NDArray[np.int64], params: IndexParams) -> Any:
    # Imported here, only for registries that need it: see _dot about its threads.
    import faiss

    n, dim = vectors.shape
    cells = int(min(max(round(params.cells_per_sqrt_row * math.sqrt(n)), 1), n))
    quantizer = faiss.IndexFlatIP(dim)
    ivf = faiss.IndexIVFFlat(quantizer, dim, cells, faiss.METRIC_INNER_PRODUCT)
    # Cosine cells for unit vectors; a fixed seed keeps one registry's index reproducible.
    ivf.cp.spherical = True
    ivf.cp.niter = params.train_iterations
    ivf.cp.seed = 1234
    ivf.cp.min_points_per_centroid = 1  # a small sample is our choice: keep faiss quiet about it
    sample = min(n, cells * params.train_points_per_cell)
    picks = np.random.default_rng(1234).choice(n, sample, replace=False)
    ivf.train(np.ascontiguousarray(vectors[np.sort(picks)]))
    ivf.add_with_ids(vectors, labels)
    ivf.nprobe = min(params.nprobe, cells)
    return ivf


def _ranked(store: _Store, q: Vector, want: int) -> list[int]:
    """Labels of the ``want`` best cached rows by the cache's own scores (dead ones included)."""
    if want <= 0:
        return []
    if store.ivf is not None:
        _, found = store.ivf.search(q[None, :], want)
        return [int(i) for i in found[0] if i >= 0]
    assert store.matrix is not None
    n = len(store.ids)
    sims = _dot(store.matrix[:n], q)
    if want < n:
        top = np.argpartition(-sims, want - 1)[:want]
        return [int(i) for i in top[np.argsort(-sims[top], kind="stable")]]
    return [int(i) for i in np.argsort(-sims, kind="stable")]


def _score(
    rows: list[tuple[str, str | None, str | None, bytes]], q: Vector, encoder: str, top_k: int
) -> list[Match]:
    """Exact scores from the rows' own bytes; best first, ties broken by embedding id."""
    if not rows:
        return []
    dim = q.shape[0]
    for *_, vec in rows:
        if len(vec) != 4 * dim:
            raise ValueError(f"stored {encoder} vectors have dim {len(vec) // 4}, query has {dim}")
    mat = np.frombuffer(b"".join(r[3] for r in rows), dtype="<f4").reshape(len(rows), dim)
    sims = _dot(mat, q)
    order = sorted(range(len(rows)), key=lambda i: (-float(sims[i]), rows[i][0]))[:top_k]
    return [Match(rows[i][0], rows[i][1], rows[i][2], float(sims[i])) for i in order]


class SpeakerIndexes:
    """The speaker-search caches of one engine, one per (kind, encoder)."""

    def __init__(self, params: IndexParams | None = None) -> None:
        self.params = params or IndexParams()
        self._lock = threading.Lock()
        self._by_key: dict[tuple[str, str], SpeakerIndex] = {}

    def get(self, kind: str, encoder: str) -> SpeakerIndex:
        with self._lock:
            index = self._by_key.get((kind, encoder))
            if index is None:
                index = self._by_key[(kind, encoder)] = SpeakerIndex(kind, encoder, self.params)
            return index


# A cache, never a source of truth (see the module docstring): entries die with their engine.
_ENGINE_INDEXES: weakref.WeakKeyDictionary[Engine, SpeakerIndexes] = weakref.WeakKeyDictionary()
_ENGINE_INDEXES_LOCK = threading.Lock()


def indexes_for(engine: Engine, params: IndexParams | None = None) -> SpeakerIndexes:
    """The engine's caches; ``params`` (if given) replaces them with fresh ones using those."""
    with _ENGINE_INDEXES_LOCK:
        current = _ENGINE_INDEXES.get(engine)
        if current is None or (params is not None and params != current.params):
            current = _ENGINE_INDEXES[engine] = SpeakerIndexes(params)
        return current


def _is_private_memory_db(engine: Engine) -> bool:
    # Every connection to ":memory:" is its own database (or, pooled statically, the caller's own
    # connection): a "committed read on another connection" would be wrong there.
    url = engine.url
    return url.get_backend_name() == "sqlite" and (
        url.database in (None, "", ":memory:") or url.query.get("mode") == "memory"
    )


def nearest(
    session: Session,
    query: Vector,
    *,
    encoder: str,
    kind: str,
    top_k: int = 10,
    exclude_voice_ids: tuple[str, ...] = (),
) -> list[Match]:
    """The ``top_k`` most similar stored vectors of one kind (``centroid`` or ``protected``)."""
    engine = _engine_of(session)
    if _is_private_memory_db(engine):
        return _nearest_uncached(session, query, encoder=encoder, kind=kind, top_k=top_k,
                                 exclude_voice_ids=exclude_voice_ids)  # fmt: skip
    return (
        indexes_for(engine)
        .get(kind, encoder)
        .search(session, query, top_k=top_k, exclude_voice_ids=exclude_voice_ids)
    )


def _nearest_uncached(
    session: Session,
    query: Vector,
    *,
    encoder: str,
    kind: str,
    top_k: int,
    exclude_voice_ids: Sequence[str],
) -> list[Match]:
    """Exact search straight from the session's rows (in-memory SQLite: tests and scratch use)."""
    q = _check_query(query)
    if top_k < 1:
        raise ValueError(f"top_k must be at least 1, not {top_k}")
    excluded = frozenset(exclude_voice_ids)
    rows = session.execute(
        select(*_ROW_COLUMNS).where(VoiceEmbedding.kind == kind, VoiceEmbedding.encoder == encoder)
    ).all()
    found = [
        (r.id, r.voice_id, r.protected_voice_id, r.vector)
        for r in rows
        if r.voice_id not in excluded
    ]
    return _score(found, q, encoder, top_k)
