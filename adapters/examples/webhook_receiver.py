"""A webhook receiver a DMS can start from: takes the hub's pushes and stores each package.

    LIENTHONG_WEBHOOK_SECRET=whsec_... python -m adapters.examples.webhook_receiver \\
        --port 8099 --out received/

Each verified package is written to ``OUT/<package id>.edxml`` (a temporary file, fsynced,
then renamed: a crash never leaves half a file), and only then answered 200: the hub's
acknowledgement. A repeat of a delivery already stored is answered 200 and not stored again.
Point the hub at it with ``lienthong agency push ORGAN_ID --url http://HOST:8099/hook``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
from pathlib import Path

from aiohttp import web

from adapters.webhook import Delivery, WebhookVerifier, webhook_handler

__all__ = ["main", "make_app"]

_SAFE_ID = re.compile(r"^[0-9a-f-]{36}$")
MAX_PACKAGE = 64 * 1024**2


def _store(out: Path):
    async def take(delivery: Delivery) -> None:
        if not _SAFE_ID.match(delivery.package_id):
            raise ValueError("Lienthong-Package-Id is not a package id")
        target = out / f"{delivery.package_id}.edxml"
        await asyncio.to_thread(_write, target, delivery.body)
        print(f"stored {delivery.kind} {delivery.package_id} ({len(delivery.body)} bytes)",
              flush=True)  # fmt: skip

    return take


def _write(target: Path, data: bytes) -> None:
    temporary = target.with_suffix(".part")
    with open(temporary, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(temporary, target)


def make_app(secret: str, out: Path) -> web.Application:
    """The receiver's application: ``POST /hook``."""
    out.mkdir(parents=True, exist_ok=True)
    app = web.Application(client_max_size=MAX_PACKAGE)
    app.router.add_post("/hook", webhook_handler(WebhookVerifier(secret), _store(out)))
    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Example receiver of lienthong pushes")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8099)
    parser.add_argument("--out", type=Path, default=Path("received"))
    args = parser.parse_args(argv)
    secret = os.environ.get("LIENTHONG_WEBHOOK_SECRET", "")
    if not secret.startswith("whsec_"):
        print("set LIENTHONG_WEBHOOK_SECRET to the secret `lienthong agency push` printed",
              file=sys.stderr)  # fmt: skip
        return 2
    web.run_app(make_app(secret, args.out), host=args.host, port=args.port, access_log=None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
