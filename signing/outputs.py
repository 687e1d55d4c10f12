"""Where ``lienthong sign`` writes: never over its input, never over a file unless forced, and
never a half-written file.

    check_output(src, dst, force=False)     # before signing: refuse early, with a stable code
    write_output(dst, data, force=False)    # after signing: temp file in dst's folder, then rename

The bytes go to a temporary file next to ``dst`` (same file system, so the rename is atomic),
are flushed to disk, and only then take ``dst``'s name: a crash, a full disk or a refusal leaves
either the old ``dst`` or none, never part of one. Without ``force`` the new name is made with a
hard link, which fails if ``dst`` appeared meanwhile (another run, another clerk), so the
check before signing is confirmed atomically at the end; with ``force`` the rename replaces it.

Codes (:class:`~signing.errors.SigningError`): ``signing.output_is_input`` (``dst`` is ``src``,
by name, link or symbolic link; even ``force`` does not allow it: signing never modifies its
input), ``signing.output_exists`` (``dst`` exists and ``force`` is off, or is a folder),
``signing.output_unwritable`` (the folder is missing or not writable, the disk is full, ...).
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
from pathlib import Path

from signing.errors import SigningError

__all__ = ["check_output", "same_file", "write_output"]


def same_file(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` are the same file (same inode: names, hard or symbolic links)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def check_output(src: Path, dst: Path, *, force: bool = False) -> None:
    """Refuse ``dst`` before anything is signed (see the module docstring for the codes)."""
    if same_file(src, dst):
        raise SigningError(
            "signing.output_is_input",
            f"the output {dst} is the input file itself: signing never modifies its input; "
            "give another output name",
        )
    if dst.is_dir():
        raise SigningError("signing.output_exists", f"the output {dst} is a folder")
    if not dst.parent.is_dir():
        raise SigningError(
            "signing.output_unwritable", f"cannot write {dst}: the folder {dst.parent} is missing"
        )
    if os.path.lexists(dst) and not force:
        raise SigningError(
            "signing.output_exists", f"{dst} already exists: use --force to replace it"
        )


def write_output(dst: Path, data: bytes, *, force: bool = False) -> None:
    """Write ``data`` to ``dst`` atomically; without ``force``, never replace an existing file."""
    tmp = dst.with_name(f".{dst.name}.{secrets.token_hex(4)}.part")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if force:
            os.replace(tmp, dst)
        else:
            _link_new(tmp, dst)
    except SigningError:
        raise
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise SigningError("signing.output_unwritable", f"cannot write {dst}: {reason}") from None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def _link_new(tmp: Path, dst: Path) -> None:
    """Give ``tmp`` the name ``dst`` only if no file has it (atomic where hard links exist)."""
    try:
        os.link(tmp, dst)
    except FileExistsError:
        raise SigningError(
            "signing.output_exists", f"{dst} already exists: use --force to replace it"
        ) from None
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV):
            raise
        # no hard links here (some network and FAT file systems): check, then rename
        if os.path.lexists(dst):
            raise SigningError(
                "signing.output_exists", f"{dst} already exists: use --force to replace it"
            ) from None
        os.replace(tmp, dst)
