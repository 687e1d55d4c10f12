"""Run ``lienthong`` as an operator does: a separate process with the test's settings."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping


def env_for(settings, **extra: str) -> dict[str, str]:
    """The environment that points a ``lienthong`` process at the test's schema, broker and blobs.

    Ledger key variables of the outer environment are dropped so a test states its own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIENTHONG_LEDGER")}
    env.update(
        LIENTHONG_DATABASE_URL=settings.database_url,
        LIENTHONG_DATABASE_SCHEMA=settings.database_schema,
        LIENTHONG_BROKER_PREFIX=settings.broker_prefix,
        LIENTHONG_BLOB_DIR=settings.blob_dir,
    )
    env.update(extra)
    return env


def cli_args(*args: str) -> list[str]:
    """The command line of ``lienthong ARGS`` under this interpreter."""
    return [sys.executable, "-m", "exchange.cli", *args]


def lienthong(
    settings, *args: str, check: bool = True, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run ``lienthong ARGS`` to completion; with ``check`` it must exit 0."""
    proc = subprocess.run(
        cli_args(*args),
        env=dict(env) if env is not None else env_for(settings),
        capture_output=True,
        text=True,
        timeout=120,
    )
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def no_noise(out: subprocess.CompletedProcess) -> None:
    """No traceback and no library log line reaches the terminal."""
    both = out.stdout + out.stderr
    assert "Traceback" not in both and "Validation error" not in both, both
