"""Every registry table (DESIGN.md §4). Relationships are ``lazy="raise"``: load what you need."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection
from sqlalchemy.engine.default import DefaultExecutionContext
from sqlalchemy.orm import Mapped, mapped_column, relationship

from voiceseal.registry.base import Base, TimestampedMixin, id_column, utcnow

ROLES = ("admin", "tenant", "auditor")


class Tenant(TimestampedMixin, Base):
    __tablename__ = "tenants"

    id: Mapped[str] = id_column("ten")
    name: Mapped[str] = mapped_column(String(200), unique=True)
    status: Mapped[str] = mapped_column(String(20), default="active")
    #: Per-tenant overrides; NULL means the settings' defaults.
    rate_limit_per_minute: Mapped[int | None] = mapped_column(Integer)
    char_quota_per_day: Mapped[int | None] = mapped_column(Integer)

    __table_args__ = (CheckConstraint("status IN ('active','suspended')", name="status"),)


class ApiKey(TimestampedMixin, Base):
    """An API key. Only a salted hash is stored; the secret is shown once at creation."""

    __tablename__ = "api_keys"

    id: Mapped[str] = id_column("key")
    #: Public, non-secret lookup prefix (``vs_…`` first characters); unique.
    prefix: Mapped[str] = mapped_column(String(24), unique=True)
    hash: Mapped[str] = mapped_column(String(128))
    name: Mapped[str] = mapped_column(String(200), default="")
    role: Mapped[str] = mapped_column(String(20))
    tenant_id: Mapped[str | None] = mapped_column(ForeignKey("tenants.id"), index=True)
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]

    tenant: Mapped[Tenant | None] = relationship(lazy="raise")

    __table_args__ = (
        CheckConstraint("role IN ('admin','tenant','auditor')", name="role"),
        # A tenant key always belongs to a tenant; platform roles never do.
        CheckConstraint(
            "(role = 'tenant' AND tenant_id IS NOT NULL) OR (role <> 'tenant' AND tenant_id IS NULL)",
            name="tenant_role",
        ),
    )


class Speaker(TimestampedMixin, Base):
    """The real person whose voice is registered."""

    __tablename__ = "speakers"

    id: Mapped[str] = id_column("spk")
    name: Mapped[str] = mapped_column(String(200))
    contact: Mapped[str] = mapped_column(String(320), default="")


class Blob(TimestampedMixin, Base):
    """A content-addressed file in the blob store; rows are written only after the bytes are safe."""

    __tablename__ = "blobs"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    content_type: Mapped[str] = mapped_column(String(100), default="application/octet-stream")


class Voice(TimestampedMixin, Base):
    __tablename__ = "voices"

    id: Mapped[str] = id_column("voice")
    name: Mapped[str] = mapped_column(String(200))
    speaker_id: Mapped[str] = mapped_column(ForeignKey("speakers.id"), index=True)
    engine: Mapped[str] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(20), default="active")
    languages: Mapped[list[str]] = mapped_column(JSON, default=list)
    #: Engine options given at registration (e.g. sampling defaults).
    engine_options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: What the engine computed once at registration (``VoiceHandle.persist``).
    engine_state: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: Engine model files as blob references, e.g. ``{"gpt": sha256, "sovits": sha256}``.
    model_files: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    created_by_key_id: Mapped[str | None] = mapped_column(ForeignKey("api_keys.id"))

    speaker: Mapped[Speaker] = relationship(lazy="raise")

    __table_args__ = (CheckConstraint("status IN ('active','disabled')", name="status"),)


class VoiceSample(TimestampedMixin, Base):
    """A reference, training or consent clip with its measured quality."""

    __tablename__ = "voice_samples"

    id: Mapped[str] = id_column("smp")
    speaker_id: Mapped[str] = mapped_column(ForeignKey("speakers.id"), index=True)
    voice_id: Mapped[str | None] = mapped_column(ForeignKey("voices.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    blob_sha256: Mapped[str] = mapped_column(ForeignKey("blobs.sha256"), index=True)
    duration_s: Mapped[float] = mapped_column(Float)
    sample_rate: Mapped[int] = mapped_column(Integer)
    transcript: Mapped[str] = mapped_column(Text, default="")
    language: Mapped[str] = mapped_column(String(16), default="en")
    snr_db: Mapped[float | None] = mapped_column(Float)
    quality: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    __table_args__ = (CheckConstraint("kind IN ('reference','training','consent')", name="kind"),)


class Consent(TimestampedMixin, Base):
    """A consent record. Its lifecycle is in ``consent_events``; revocation appends, never deletes."""

    __tablename__ = "consents"

    id: Mapped[str] = id_column("cons")
    speaker_id: Mapped[str] = mapped_column(ForeignKey("speakers.id"), index=True)
    voice_id: Mapped[str | None] = mapped_column(ForeignKey("voices.id"), index=True)
    #: Increments per speaker: generations record which version they were made under.
    version: Mapped[int] = mapped_column(Integer, default=1)
    statement: Mapped[str] = mapped_column(Text)
    #: sha256 of the nonce; the nonce itself is only ever in the statement the speaker reads.
    nonce_hash: Mapped[str] = mapped_column(String(64), unique=True)
    nonce_expires_at: Mapped[datetime]
    nonce_used_at: Mapped[datetime | None]
    statement_sample_id: Mapped[str | None] = mapped_column(ForeignKey("voice_samples.id"))
    status: Mapped[str] = mapped_column(String(20), default="pending")
    scope_tenants: Mapped[list[str]] = mapped_column(JSON, default=list)
    scope_purposes: Mapped[list[str]] = mapped_column(JSON, default=list)
    scope_languages: Mapped[list[str]] = mapped_column(JSON, default=list)
    expires_at: Mapped[datetime | None]
    #: Every verification check with its scores (transcript match, speaker similarity, watermark…).
    verification: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_by_key_id: Mapped[str | None] = mapped_column(ForeignKey("api_keys.id"))

    __table_args__ = (
        CheckConstraint(
            "status IN ('pending','active','refused','revoked','expired')", name="status"
        ),
    )


class ConsentEvent(TimestampedMixin, Base):
    __tablename__ = "consent_events"

    id: Mapped[str] = id_column("cev")
    consent_id: Mapped[str] = mapped_column(ForeignKey("consents.id"), index=True)
    event: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(Text, default="")
    actor_key_id: Mapped[str | None] = mapped_column(ForeignKey("api_keys.id"))
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class ProtectedVoice(TimestampedMixin, Base):
    """A voice that may never be cloned (its embeddings live in ``voice_embeddings``)."""

    __tablename__ = "protected_voices"

    id: Mapped[str] = id_column("pv")
    name: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text, default="")
    created_by_key_id: Mapped[str | None] = mapped_column(ForeignKey("api_keys.id"))


class Counter(Base):
    """A named counter. Taking a value locks the row until commit, so values are handed out in
    commit order with no gaps: a reader that sees value n has seen every committed value below n.
    """

    __tablename__ = "counters"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger)


def next_counter_value(connection: Connection, name: str) -> int:
    """Increment counter ``name`` (creating it at 1) in the caller's transaction; its new value."""
    dialect = connection.dialect.name
    if dialect == "postgresql":
        upsert: Any = pg_insert(Counter)
    elif dialect == "sqlite":
        upsert = sqlite_insert(Counter)
    else:
        raise ValueError(f"counters need PostgreSQL or SQLite, not {dialect}")
    stmt = (
        upsert.values(name=name, value=1)
        .on_conflict_do_update(index_elements=[Counter.name], set_={"value": Counter.value + 1})
        .returning(Counter.value)
    )
    return int(connection.execute(stmt).scalar_one())


#: Counter behind ``VoiceEmbedding.seq``.
EMBEDDING_SEQ = "voice_embeddings.seq"


def _next_embedding_seq(context: DefaultExecutionContext) -> int:
    return next_counter_value(context.connection, EMBEDDING_SEQ)


class VoiceEmbedding(TimestampedMixin, Base):
    """A speaker vector: per sample, per voice (centroid = the fingerprint) or for a protected voice."""

    __tablename__ = "voice_embeddings"

    id: Mapped[str] = id_column("emb")
    #: Commit-ordered, gap-free insertion number: speaker-search caches catch up with ``seq > n``.
    seq: Mapped[int] = mapped_column(BigInteger, unique=True, default=_next_embedding_seq)
    kind: Mapped[str] = mapped_column(String(20))
    voice_id: Mapped[str | None] = mapped_column(ForeignKey("voices.id"), index=True)
    sample_id: Mapped[str | None] = mapped_column(ForeignKey("voice_samples.id"), index=True)
    protected_voice_id: Mapped[str | None] = mapped_column(
        ForeignKey("protected_voices.id"), index=True
    )
    encoder: Mapped[str] = mapped_column(String(100))
    encoder_version: Mapped[str] = mapped_column(String(100))
    dim: Mapped[int] = mapped_column(Integer)
    #: float32 little-endian, L2-normalised.
    vector: Mapped[bytes] = mapped_column(LargeBinary)

    __table_args__ = (
        CheckConstraint("kind IN ('sample','centroid','protected')", name="kind"),
        Index("ix_voice_embeddings_kind_encoder_seq", "kind", "encoder", "seq"),
    )


class Adapter(TimestampedMixin, Base):
    __tablename__ = "adapters"

    id: Mapped[str] = id_column("adp")
    voice_id: Mapped[str] = mapped_column(ForeignKey("voices.id"), index=True)
    kind: Mapped[str] = mapped_column(String(50))
    blob_sha256: Mapped[str | None] = mapped_column(ForeignKey("blobs.sha256"))
    status: Mapped[str] = mapped_column(String(20), default="pending")
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    job_id: Mapped[str | None] = mapped_column(ForeignKey("jobs.id"))


class Generation(TimestampedMixin, Base):
    """One row per output (delivered or refused): the answer to "who made this clip"."""

    __tablename__ = "generations"

    id: Mapped[str] = id_column("gen")
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    api_key_id: Mapped[str | None] = mapped_column(ForeignKey("api_keys.id"))
    voice_id: Mapped[str | None] = mapped_column(ForeignKey("voices.id"), index=True)
    consent_id: Mapped[str | None] = mapped_column(ForeignKey("consents.id"))
    consent_version: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20))
    refusal_code: Mapped[str | None] = mapped_column(String(64))
    refusal_reason: Mapped[str | None] = mapped_column(Text)
    purpose: Mapped[str] = mapped_column(String(64), default="")
    engine: Mapped[str] = mapped_column(String(100), default="")
    engine_version: Mapped[str] = mapped_column(String(100), default="")
    model_versions: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    language: Mapped[str] = mapped_column(String(16), default="")
    text_sha256: Mapped[str] = mapped_column(String(64))
    text_chars: Mapped[int] = mapped_column(Integer)
    audio_sha256: Mapped[str | None] = mapped_column(String(64), index=True)
    duration_s: Mapped[float | None] = mapped_column(Float)
    sample_rate: Mapped[int | None] = mapped_column(Integer)
    response_format: Mapped[str] = mapped_column(String(10), default="wav")
    streamed: Mapped[bool] = mapped_column(Boolean, default=False)
    watermarker: Mapped[str | None] = mapped_column(String(100))
    #: The 32-bit payload embedded in the audio: the key from a found mark to this row.
    watermark_payload: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    watermark_confidence: Mapped[float | None] = mapped_column(Float)
    speaker_encoder: Mapped[str | None] = mapped_column(String(100))
    speaker_vector: Mapped[bytes | None] = mapped_column(LargeBinary)
    similarity_to_voice: Mapped[float | None] = mapped_column(Float)
    max_protected_similarity: Mapped[float | None] = mapped_column(Float)
    protected_voice_id: Mapped[str | None] = mapped_column(ForeignKey("protected_voices.id"))
    timings_ms: Mapped[dict[str, float]] = mapped_column(JSON, default=dict)

    __table_args__ = (
        CheckConstraint(
            "status IN ('delivered','interrupted','refused','failed','violation')", name="status"
        ),
        Index("ix_generations_tenant_created", "tenant_id", "created_at"),
    )


class FingerprintHash(Base):
    """Landmark hashes of generated audio, for near-duplicate search when no watermark survives."""

    __tablename__ = "fingerprint_hashes"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    generation_id: Mapped[str] = mapped_column(ForeignKey("generations.id"), index=True)
    hash: Mapped[int] = mapped_column(BigInteger, index=True)
    #: Frame offset of the anchor peak, for time-consistency voting.
    offset: Mapped[int] = mapped_column(Integer)


class AuditHead(Base):
    """Single row holding the chain's tip; updating it serialises appends on every backend."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, default=0)
    last_hash: Mapped[str] = mapped_column(String(64))


class AuditEvent(Base):
    """Append-only audit log; each row's hash covers its content and the previous row's hash."""

    __tablename__ = "audit_events"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    action: Mapped[str] = mapped_column(String(64), index=True)
    actor_key_id: Mapped[str | None] = mapped_column(String(40))
    tenant_id: Mapped[str | None] = mapped_column(String(40), index=True)
    subject_type: Mapped[str] = mapped_column(String(40), default="")
    subject_id: Mapped[str] = mapped_column(String(40), default="", index=True)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class Job(TimestampedMixin, Base):
    __tablename__ = "jobs"

    id: Mapped[str] = id_column("job")
    kind: Mapped[str] = mapped_column(String(50))
    status: Mapped[str] = mapped_column(String(20), default="queued")
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    message: Mapped[str] = mapped_column(Text, default="")
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    result: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    __table_args__ = (
        CheckConstraint(
            "status IN ('queued','running','succeeded','failed','cancelled')", name="status"
        ),
    )


class IdempotencyRecord(TimestampedMixin, Base):
    """A creating POST's stored outcome, replayed for a repeated Idempotency-Key."""

    __tablename__ = "idempotency_records"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    api_key_id: Mapped[str] = mapped_column(ForeignKey("api_keys.id"))
    key: Mapped[str] = mapped_column(String(200))
    method_path: Mapped[str] = mapped_column(String(300))
    request_sha256: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    content_type: Mapped[str] = mapped_column(String(100))
    body: Mapped[bytes] = mapped_column(LargeBinary)
    #: Response headers replayed with the body (the speech route's generation id and payload).
    headers: Mapped[dict[str, str] | None] = mapped_column(JSON, nullable=True)

    __table_args__ = (UniqueConstraint("api_key_id", "key", name="uq_idempotency_key"),)


class UsageWindow(Base):
    """Fixed-window counters for rate limits and character quotas, shared by every process."""

    __tablename__ = "usage_windows"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    kind: Mapped[str] = mapped_column(String(20))
    window_start: Mapped[datetime]
    amount: Mapped[int] = mapped_column(BigInteger, default=0)

    __table_args__ = (
        UniqueConstraint("tenant_id", "kind", "window_start", name="uq_usage_window"),
    )
