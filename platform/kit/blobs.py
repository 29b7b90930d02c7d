"""Storing bytes with their ``blobs`` row: the file first, then the row (no row without its file)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from voiceseal.kit.blobstore import LocalBlobStore
from voiceseal.registry.models import Blob


def store(
    session: Session,
    blobs: LocalBlobStore,
    data: bytes,
    content_type: str = "application/octet-stream",
) -> str:
    sha = blobs.put(data)
    if session.get(Blob, sha) is None:
        session.add(Blob(sha256=sha, size=len(data), content_type=content_type))
        session.flush()
    return sha
