"""Secrets the hub must read back, sealed at rest.

Some secrets cannot be stored as hashes because the hub itself computes with them: the HMAC
key a VDXP system signs its headers with, the webhook secret the hub signs pushes with. They
are stored sealed with AES-256-GCM (``cryptography``), bound to what they belong to (the
``context``, e.g. ``b"webhook:000.00.00.G22"``) so a sealed value copied to another row does
not open.

The key: ``LIENTHONG_SECRET_KEY`` (base64 of 32 bytes), else the file ``secret_key_file``
(the same, one key per line, the first is current and the others still open what they
sealed: rotation), else a development key made once at ``<blob_dir>/../secret.key`` (mode
0600, with a warning in the log). The key never reaches a log line.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from exchange.config import Settings

__all__ = ["SealError", "SecretBox", "SecretKeyError", "new_secret_key", "open_secret_box"]

log = logging.getLogger(__name__)

_VERSION = b"\x01"
_KEY_ID_BYTES = 8
_NONCE_BYTES = 12


class SecretKeyError(ValueError):
    """The secret key is missing or malformed (the message names where it was read)."""


class SealError(ValueError):
    """A sealed value that does not open: another key, another context, or damaged."""


def new_secret_key() -> str:
    """A fresh key as written in ``secret_key_file`` or ``LIENTHONG_SECRET_KEY``."""
    return base64.b64encode(secrets.token_bytes(32)).decode()


def _key_id(key: bytes) -> bytes:
    return hashlib.sha256(b"lienthong-secret-key" + key).digest()[:_KEY_ID_BYTES]


class SecretBox:
    """Seal and open secrets with the current key; older keys still open what they sealed."""

    def __init__(self, keys: list[bytes]) -> None:
        if not keys or any(len(k) != 32 for k in keys):
            raise SecretKeyError("a secret key is 32 bytes (base64 of 32 random bytes)")
        self._current = keys[0]
        self._by_id = {_key_id(k): AESGCM(k) for k in keys}

    def seal(self, secret: bytes, *, context: bytes) -> bytes:
        """``secret`` encrypted and authenticated, bound to ``context``."""
        nonce = os.urandom(_NONCE_BYTES)
        key_id = _key_id(self._current)
        sealed = self._by_id[key_id].encrypt(nonce, secret, _VERSION + context)
        return _VERSION + key_id + nonce + sealed

    def open(self, sealed: bytes, *, context: bytes) -> bytes:
        """The secret that :meth:`seal` sealed with the same ``context``."""
        head = 1 + _KEY_ID_BYTES
        if len(sealed) < head + _NONCE_BYTES + 16 or sealed[:1] != _VERSION:
            raise SealError("not a sealed secret")
        aead = self._by_id.get(bytes(sealed[1:head]))
        if aead is None:
            raise SealError("sealed with a key this hub does not have")
        nonce = bytes(sealed[head : head + _NONCE_BYTES])
        try:
            return aead.decrypt(nonce, bytes(sealed[head + _NONCE_BYTES :]), _VERSION + context)
        except InvalidTag:
            raise SealError("the sealed secret does not open (damaged, or another row's)") from None

    def needs_reseal(self, sealed: bytes) -> bool:
        """Whether ``sealed`` was made with an older key (re-seal it with the current one)."""
        return bytes(sealed[1 : 1 + _KEY_ID_BYTES]) != _key_id(self._current)


def _decode(line: str, where: str) -> bytes:
    try:
        key = base64.b64decode(line.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise SecretKeyError(f"{where}: a secret key is base64 of 32 random bytes") from None
    if len(key) != 32:
        raise SecretKeyError(f"{where}: a secret key is 32 bytes, this one is {len(key)}")
    return key


def _development_key_file(settings: Settings) -> Path:
    path = Path(settings.blob_dir).resolve().parent / "secret.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(new_secret_key() + "\n")
        log.warning(
            "development secret key created; configure secret_key_file for production",
            extra={"path": str(path)},
        )
    return path


def open_secret_box(settings: Settings) -> SecretBox:
    """The hub's secret box, from the environment, the configured file or the development key."""
    from_env = os.environ.get("LIENTHONG_SECRET_KEY", "").strip()
    if from_env:
        return SecretBox([_decode(from_env, "LIENTHONG_SECRET_KEY")])
    path = Path(settings.secret_key_file) if settings.secret_key_file else None
    if path is None:
        path = _development_key_file(settings)
    try:
        lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
    except OSError as exc:
        raise SecretKeyError(f"secret_key_file {path}: {exc.strerror or exc}") from None
    if not lines:
        raise SecretKeyError(f"secret_key_file {path}: no key in it")
    return SecretBox([_decode(line, f"secret_key_file {path}") for line in lines])
