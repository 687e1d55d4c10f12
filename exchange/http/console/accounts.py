"""Console users made for ``lienthong demo --keep-serving``: one of each role, fresh
passwords printed once (the demo's own hub only; real users come from ``lienthong user add``)."""

from __future__ import annotations

import asyncio
import secrets

from exchange.http.console.passwords import hash_password

__all__ = ["add_demo_users"]


async def add_demo_users(console_store, clerk_agency: str) -> list[tuple[str, str, str, str]]:
    """(name, role, agency, password) for an operator, a clerk of ``clerk_agency`` and an
    auditor, each with a new random password."""
    made = []
    for name, role, agency in (
        ("demo-vanhanh", "operator", None),
        ("demo-vanthu", "clerk", clerk_agency),
        ("demo-kiemtoan", "auditor", None),
    ):
        password = secrets.token_urlsafe(12)
        await console_store.add_user(
            name, role, agency, await asyncio.to_thread(hash_password, password)
        )
        made.append((name, role, agency or "", password))
    return made
