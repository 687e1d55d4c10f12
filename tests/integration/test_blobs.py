"""Temporary upload files: a live upload's file survives another process starting on the same
folder; a dead one's (whatever host or process namespace it had) is removed."""

from __future__ import annotations

from exchange.blobs import BlobStore


def test_only_files_nobody_writes_are_removed_at_start(tmp_path):
    store = BlobStore(tmp_path)
    live = store.incoming(1024)
    live.write(b"<edXML")
    stale = [store.tmp_dir / "in-otherhost-1-abc", store.tmp_dir / "in-old"]
    for path in stale:
        path.write_bytes(b"left by a killed hub")
    again = BlobStore(tmp_path)  # another process starting on the same folder
    assert again.removed_at_start == 2
    assert live.path.exists() and not any(p.exists() for p in stale)
    live.discard()
    assert not live.path.exists()
