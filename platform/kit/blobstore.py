"""Content-addressed blob store on the local disk (S3-compatible stores plug in behind the same API).

Bytes are written to a temporary file in the same folder, fsynced, then renamed into place, so a
blob either exists whole or not at all; callers add the ``blobs`` row only after ``put`` returns,
which leaves no row pointing at a missing or partial file (a full disk raises before any row).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path

from voiceseal.errors import BlobStoreError, NotFound

_HEX = set("0123456789abcdef")


class LocalBlobStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _path(self, sha256: str) -> Path:
        if len(sha256) != 64 or not set(sha256) <= _HEX:
            raise NotFound(f"not a blob id: {sha256[:80]!r}")
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def put(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        path = self._path(digest)
        if path.exists():
            return digest
        tmp_name: str | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=".incoming-")
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp_name, path)
            tmp_name = None
        except OSError as exc:
            raise BlobStoreError(
                f"could not store a blob of {len(data)} bytes: {exc.strerror or exc}"
            ) from exc
        finally:
            if tmp_name is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp_name)
        return digest

    def get(self, sha256: str) -> bytes:
        path = self._path(sha256)
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise NotFound(f"blob {sha256} is missing from the store") from None

    def path(self, sha256: str) -> Path:
        """Local path of a stored blob (engines that need files, e.g. checkpoints, read from here)."""
        path = self._path(sha256)
        if not path.exists():
            raise NotFound(f"blob {sha256} is missing from the store")
        return path

    def exists(self, sha256: str) -> bool:
        try:
            return self._path(sha256).exists()
        except NotFound:
            return False
