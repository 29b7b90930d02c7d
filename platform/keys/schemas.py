"""Request and response bodies for API keys. No response but ``ApiKeyCreated`` carries a secret."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Role = Literal["admin", "tenant", "auditor"]


class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role
    tenant_id: str | None = Field(default=None, max_length=40)
    name: str = Field(default="", max_length=200)

    @model_validator(mode="after")
    def _tenant_matches_role(self) -> ApiKeyCreate:
        if self.role == "tenant" and not self.tenant_id:
            raise ValueError("a tenant key needs tenant_id")
        if self.role != "tenant" and self.tenant_id:
            raise ValueError(f"an {self.role} key belongs to no tenant; leave tenant_id out")
        return self


class ApiKeyPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    prefix: str
    name: str
    role: Role
    tenant_id: str | None
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyPublic):
    #: The full key. Returned by the creating request only; it cannot be retrieved again.
    key: str
