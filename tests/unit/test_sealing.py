"""Secrets sealed at rest: they open only with the key and the context they were sealed with."""

from __future__ import annotations

import base64
import os
import stat

import pytest

from exchange.config import load_settings
from exchange.sealing import SealError, SecretBox, SecretKeyError, new_secret_key, open_secret_box


def _key() -> bytes:
    return base64.b64decode(new_secret_key())


def test_a_sealed_secret_opens_with_its_context_only():
    box = SecretBox([_key()])
    sealed = box.seal(b"whsec_abc", context=b"webhook:000.00.00.G22")
    assert b"whsec_abc" not in sealed
    assert box.open(sealed, context=b"webhook:000.00.00.G22") == b"whsec_abc"
    with pytest.raises(SealError):
        box.open(sealed, context=b"webhook:000.00.00.H49")  # copied to another row
    damaged = bytearray(sealed)
    damaged[-1] ^= 1
    with pytest.raises(SealError):
        box.open(bytes(damaged), context=b"webhook:000.00.00.G22")
    with pytest.raises(SealError):
        SecretBox([_key()]).open(sealed, context=b"webhook:000.00.00.G22")


def test_an_older_key_still_opens_what_it_sealed_and_asks_for_a_reseal():
    old, new = _key(), _key()
    sealed = SecretBox([old]).seal(b"s", context=b"c")
    rotated = SecretBox([new, old])
    assert rotated.open(sealed, context=b"c") == b"s"
    assert rotated.needs_reseal(sealed)
    assert not rotated.needs_reseal(rotated.seal(b"s", context=b"c"))


def test_the_key_comes_from_the_environment_then_the_file_then_a_development_key(
    tmp_path, monkeypatch
):
    monkeypatch.delenv("LIENTHONG_SECRET_KEY", raising=False)
    settings = load_settings(env={}).replace(blob_dir=str(tmp_path / "var" / "blobs"))
    box = open_secret_box(settings)  # development key, made once, private
    made = tmp_path / "var" / "secret.key"
    assert stat.S_IMODE(os.stat(made).st_mode) == 0o600
    sealed = box.seal(b"x", context=b"c")
    assert open_secret_box(settings).open(sealed, context=b"c") == b"x"
    keyfile = tmp_path / "keys"
    keyfile.write_text(new_secret_key() + "\n" + made.read_text())
    assert (
        open_secret_box(settings.replace(secret_key_file=str(keyfile))).open(sealed, context=b"c")
        == b"x"
    )
    monkeypatch.setenv("LIENTHONG_SECRET_KEY", "bm90IDMyIGJ5dGVz")
    with pytest.raises(SecretKeyError, match="LIENTHONG_SECRET_KEY"):
        open_secret_box(settings)
    monkeypatch.delenv("LIENTHONG_SECRET_KEY")
    with pytest.raises(SecretKeyError, match="secret_key_file"):
        open_secret_box(settings.replace(secret_key_file=str(tmp_path / "absent")))
