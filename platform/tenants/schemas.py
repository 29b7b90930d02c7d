"""Request and response bodies for tenants."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field


def _clean_name(value: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError("the name is empty")
    if any(ord(c) < 32 for c in value):
        raise ValueError("the name contains control characters")
    return value


TenantName = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(_clean_name)]
#: None means "use the platform default from settings".
RateLimit = Annotated[int | None, Field(ge=1, le=1_000_000)]
CharQuota = Annotated[int | None, Field(ge=1, le=10_000_000_000)]


class TenantCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: TenantName
    rate_limit_per_minute: RateLimit = None
    char_quota_per_day: CharQuota = None


class TenantUpdate(BaseModel):
    """Fields left out stay as they are; an explicit null limit returns to the default."""

    model_config = ConfigDict(extra="forbid")

    status: Literal["active", "suspended"] | None = None
    rate_limit_per_minute: RateLimit = None
    char_quota_per_day: CharQuota = None


class TenantPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    status: Literal["active", "suspended"]
    rate_limit_per_minute: int | None
    char_quota_per_day: int | None
    created_at: datetime
