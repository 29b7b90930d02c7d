"""One validated settings class, read from ``VOICESEAL_*`` environment variables (and ``.env``)."""

from __future__ import annotations

import os
import secrets
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDER_SECRETS = {"changethis", "change-me", "secret", "test", ""}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VOICESEAL_", env_file=".env", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    #: Everything the platform writes by default lives here (SQLite file, blobs, secrets, outputs).
    data_dir: Path = Path("data")
    #: SQLAlchemy URL. Default: SQLite file inside ``data_dir``. Production: postgresql+psycopg://...
    database_url: str | None = None
    #: Content-addressed blob store folder. Default: ``data_dir/blobs``.
    blob_dir: Path | None = None

    #: Secret key for the watermark. In development it is generated once into ``data_dir`` (mode 0600);
    #: in production it must be given and must not be a placeholder.
    watermark_key: SecretStr | None = Field(default=None, repr=False)
    #: Pepper mixed into API-key hashes; same rules as the watermark key.
    key_pepper: SecretStr | None = Field(default=None, repr=False)

    default_engine: str = "reference"
    default_watermarker: str = "patchwork"
    default_speaker_encoder: str = "resemblyzer"
    default_transcriber: str = "whisper"
    device: str = "cpu"

    loudness_target_lufs: float = -23.0  # EBU R128 programme loudness
    true_peak_dbfs: float = -1.0
    output_sample_rate: int = 24000
    max_text_chars: int = 4096
    max_upload_bytes: int = 50 * 1024 * 1024
    max_audit_seconds: float = 600.0

    #: Speaker-similarity thresholds (resemblyzer cosine), set from bench/calibrate_speakers.py on
    #: the sample voices (synthetic: recalibrate on real recordings). A false accept at consent
    #: means cloning someone else, so this one trades FRR for FAR: 0 % / 0 % on distinct voices
    #: (different-speaker max 0.902, same-speaker min 0.932).
    same_speaker_threshold: float = 0.92
    #: Protected-voice and "already another speaker's voice" checks, at enrolment and at
    #: generation: here a miss is the costly error, so it sits lower (one-clip enrolment FRR 0 %,
    #: FAR 1.1 % on distinct voices at 0.88).
    protected_match_threshold: float = 0.88
    protected_margin: float = 0.0
    #: A delivered output must be at least this similar to its own voice (a floor: the reference
    #: engine's outputs score 0.595-0.66 against Kokoro targets; 0.60 would refuse 11 % of them).
    output_match_threshold: float = 0.5

    rate_limit_per_minute: int = 120
    char_quota_per_day: int = 1_000_000

    log_level: str = "INFO"

    @field_validator("data_dir", "blob_dir", mode="after")
    @classmethod
    def _expand(cls, v: Path | None) -> Path | None:
        return v.expanduser() if v is not None else None

    @model_validator(mode="after")
    def _refuse_placeholders(self) -> Settings:
        if self.environment == "production":
            for field_name in ("watermark_key", "key_pepper"):
                value = getattr(self, field_name)
                if value is None or value.get_secret_value().strip().lower() in PLACEHOLDER_SECRETS:
                    raise ValueError(
                        f"VOICESEAL_{field_name.upper()} must be set to a real secret in production"
                    )
        return self

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'voiceseal.db').resolve()}"

    @property
    def resolved_blob_dir(self) -> Path:
        return self.blob_dir or self.data_dir / "blobs"

    def _secret(self, given: SecretStr | None, filename: str) -> bytes:
        if given is not None:
            return given.get_secret_value().encode()
        # Development default: one random secret per data folder, created on first use, never logged.
        path = self.data_dir / "secrets" / filename
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_hex(32))
        return path.read_text().strip().encode()

    @cached_property
    def watermark_key_bytes(self) -> bytes:
        return self._secret(self.watermark_key, "watermark.key")

    @cached_property
    def key_pepper_bytes(self) -> bytes:
        return self._secret(self.key_pepper, "key_pepper")
