"""The VDXP facade under ``/vdxp/``: what a DMS on VNPT's SDKVXP speaks, byte for byte
(shared/interop/VDXP-WIRE.md). ``service.endpoint`` of the SDK's configuration is
``<hub>/vdxp``; the SDK appends ``/<operation>``."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from aiohttp import web

from exchange.http.vdxp.envelope import refusal
from exchange.http.vdxp.operations import OPERATIONS

__all__ = ["BASE", "ROUTES", "refusal", "slashes_middleware"]

BASE = "/vdxp"
ROUTES = [(method, f"{BASE}/{name}", handler) for method, name, handler, _ in OPERATIONS]
_BY_PATH = {(method, path): handler for method, path, handler in ROUTES}
_SLASHES = re.compile(r"/{2,}")


@web.middleware
async def slashes_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """``<base>//sendEdoc``: a DMS configured with a trailing slash (the SDK concatenates)."""
    if request.path.startswith(BASE + "/") and "//" in request.path:
        merged = _BY_PATH.get((request.method, _SLASHES.sub("/", request.path)))
        if merged is not None:
            return await merged(request)
    return await handler(request)
