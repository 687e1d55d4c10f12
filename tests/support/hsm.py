"""SoftHSM2 tokens created on the fly, holding keys and certificates of the test PKI.

The token lives in a temporary folder (``SOFTHSM2_CONF`` points at it), so tests never touch a
system token. Keys are imported with ``softhsm2-util`` and certificates with OpenSC's
``pkcs11-tool``: the same tools an operator would use.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.support.pki import Identity

__all__ = ["SOFTHSM_MODULE", "Token", "make_token"]

SOFTHSM_MODULE = next(
    (
        p
        for p in (
            "/usr/lib/softhsm/libsofthsm2.so",
            "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
            "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
        )
        if Path(p).exists()
    ),
    "/usr/lib/softhsm/libsofthsm2.so",
)


@dataclass(frozen=True)
class Token:
    module: str
    label: str
    pin: str
    conf: Path


def _run(*args: str) -> None:
    proc = subprocess.run(args, capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise RuntimeError(f"{args[0]} failed: {proc.stdout}{proc.stderr}")


def make_token(
    directory: Path, identities: list[Identity], label: str = "lienthong-test", pin: str = "123456"
) -> Token:
    """A fresh token holding each identity's key and certificate under its name (ids 01, 02...)."""
    tokens = directory / "tokens"
    tokens.mkdir(parents=True, exist_ok=True)
    conf = directory / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n"
    )
    os.environ["SOFTHSM2_CONF"] = str(conf)
    _run(
        "softhsm2-util",
        "--init-token",
        "--free",
        "--label",
        label,
        "--pin",
        pin,
        "--so-pin",
        "87654321",
    )
    for index, identity in enumerate(identities, 1):
        key_id = f"{index:02x}"
        _run(
            "softhsm2-util",
            "--import",
            str(identity.key_pem),
            "--token",
            label,
            "--label",
            identity.name,
            "--id",
            key_id,
            "--pin",
            pin,
        )
        der = directory / f"{identity.name}.der"
        der.write_bytes(identity.cert_der)
        _run(
            "pkcs11-tool",
            "--module",
            SOFTHSM_MODULE,
            "--token-label",
            label,
            "--login",
            "--pin",
            pin,
            "--write-object",
            str(der),
            "--type",
            "cert",
            "--id",
            key_id,
            "--label",
            identity.name,
        )
    return Token(SOFTHSM_MODULE, label, pin, conf)
