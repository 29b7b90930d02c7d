"""Who is calling: the authenticated API key, as seen by endpoints and services."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Principal:
    api_key_id: str
    role: str
    #: Set for tenant keys (always), None for admin and auditor keys.
    tenant_id: str | None
    name: str = ""

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"
