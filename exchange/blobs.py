"""Content-addressed storage of package bytes: one file per SHA-256, written once, never edited.

Bodies are streamed to a temporary file while they are hashed, so a 50 MiB upload is never held
in memory; the file is fsynced and renamed into place only once the hub has accepted it.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import os
import tempfile
from pathlib import Path

from exchange.errors import HubError

__all__ = ["BlobStore", "IncomingBlob"]


class IncomingBlob:
    """A body being received: a temporary file plus its running SHA-256 and size."""

    def __init__(self, store: BlobStore, limit: int) -> None:
        self._store = store
        self._limit = limit
        fd, name = tempfile.mkstemp(dir=store.tmp_dir, prefix="in-")
        # Held while the file lives: whoever can take this lock knows nobody writes it.
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._file = os.fdopen(fd, "wb")
        self.path = Path(name)
        self.size = 0
        self._hash = hashlib.sha256()

    def write(self, chunk: bytes) -> None:
        """Append a chunk; refuse the body as soon as it passes the limit."""
        self.size += len(chunk)
        if self.size > self._limit:
            raise HubError(
                "body.too_large",
                f"the body is larger than the limit of {self._limit} bytes",
            )
        self._hash.update(chunk)
        self._file.write(chunk)

    @property
    def digest(self) -> bytes:
        return self._hash.digest()

    async def finish(self) -> None:
        """The whole body was received: flush it to the file, which the parser reads; the file
        stays open, and locked, until it is kept or discarded. Bytes are made durable only
        when they are kept: a refused or repeated body never costs an fsync."""
        self._file.flush()

    async def keep(self) -> Path:
        """Move the file to its content address (identical bodies share one file), durably,
        before any row points at it: the file and the move are fsynced (one thread hop for
        the fsyncs, the fan-out folders and the rename)."""
        target = self._store.path_for(self.digest)
        if target.is_file():  # the same bytes are kept, maybe a moment ago by another request:
            await asyncio.to_thread(self._store.settle, target)  # their name is durable too
            return target
        await asyncio.to_thread(self._store.keep_file, self._file, self.path, target)
        return target

    def discard(self) -> None:
        """Drop the temporary file (refused or duplicate body)."""
        if not self._file.closed:
            self._file.close()
        self.path.unlink(missing_ok=True)


class BlobStore:
    """Files under ``root/ab/cd/<sha256 hex>``."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root).resolve()
        self.tmp_dir = self.root / "tmp"
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        self._folders: set[Path] = set()
        self.removed_at_start = self._remove_orphans()

    def _remove_orphans(self) -> int:
        """Remove the temporary files of uploads nobody writes any more (a killed hub): a live
        upload holds a lock on its file, whichever host or process namespace it runs in."""
        removed = 0
        for path in self.tmp_dir.glob("in-*"):
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                path.unlink(missing_ok=True)
                removed += 1
            except BlockingIOError:
                pass  # being written right now
            finally:
                os.close(fd)
        return removed

    def path_for(self, digest: bytes) -> Path:
        """Where the blob with this SHA-256 lives (the digest is ours, never a client's path)."""
        hexed = digest.hex()
        return self.root / hexed[:2] / hexed[2:4] / hexed

    def ensure_dir(self, folder: Path) -> None:
        """Create a fan-out folder once (there are 65,536 of them at most), durably."""
        if folder not in self._folders:
            for level in (folder.parent, folder):
                if not level.exists():
                    level.mkdir(exist_ok=True)
                    _fsync_dir(level.parent)
            self._folders.add(folder)

    def settle(self, target: Path) -> None:
        """Make an existing blob's name durable (it may have been renamed into place a moment
        ago, its folder not yet fsynced, by another request or process)."""
        _fsync_dir(target.parent)

    def keep_file(self, file, source: Path, target: Path) -> None:
        """fsync an open temporary file, close it, and rename it durably to ``target``."""
        file.flush()
        os.fsync(file.fileno())
        self.ensure_dir(target.parent)
        os.replace(source, target)
        file.close()
        _fsync_dir(target.parent)

    def incoming(self, limit: int) -> IncomingBlob:
        return IncomingBlob(self, limit)

    def read(self, digest: bytes) -> bytes:
        return self.path_for(digest).read_bytes()


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
