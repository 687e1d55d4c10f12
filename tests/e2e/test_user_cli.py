"""``lienthong user add|list``: console users from the terminal; the password never on the
command line and kept only as Argon2id."""

from __future__ import annotations

import pytest

from exchange.registry import Agency
from exchange.store import Stores
from exchange.store import database as db
from tests.conftest import make_settings
from tests.support.cli import env_for, lienthong


@pytest.fixture(scope="module")
async def settings(tmp_path_factory):
    s = make_settings(tmp_path_factory.mktemp("users"))
    await db.create_database(s)
    await db.migrate(s)
    pool = await db.connect(s, min_size=1, max_size=1)
    try:
        await Stores.over(pool).registry.upsert(
            [Agency("000.00.00.H49", "UBND tỉnh Quảng Ninh", None, "province")]
        )
    finally:
        await pool.close()
    yield s
    await db.drop_schema(s)


def _env(settings, password="mot-mat-khau-du-dai"):
    return env_for(settings, LIENTHONG_CONSOLE_PASSWORD=password)


async def test_add_a_clerk_and_an_operator(settings):
    out = lienthong(
        settings,
        "user",
        "add",
        "vanthu",
        "--role",
        "clerk",
        "--agency",
        "000.00.00.h49",
        env=_env(settings),
    )
    assert "vanthu (clerk of 000.00.00.H49) saved" in out.stdout
    lienthong(settings, "user", "add", "an", "--role", "operator", env=_env(settings))
    listed = lienthong(settings, "user", "list").stdout
    assert "vanthu\tclerk\t000.00.00.H49" in listed and "an\toperator" in listed
    pool = await db.connect(settings, min_size=1, max_size=1)
    try:
        stored = await pool.fetchval("SELECT password_hash FROM console_users WHERE name = 'an'")
    finally:
        await pool.close()
    assert stored.startswith("$argon2id$") and "mot-mat-khau" not in stored


@pytest.mark.parametrize(
    ("args", "password", "message"),
    [
        (("x", "--role", "clerk"), "mot-mat-khau-du-dai", "give --agency"),
        (
            ("x", "--role", "auditor", "--agency", "000.00.00.H49"),
            "mot-mat-khau-du-dai",
            "only clerks",
        ),
        (
            ("x", "--role", "clerk", "--agency", "000.00.00.H47"),
            "mot-mat-khau-du-dai",
            "not in the registry",
        ),
        (("x", "--role", "auditor"), "ngan", "at least 10 characters"),
        (("x y", "--role", "auditor"), "mot-mat-khau-du-dai", "without spaces"),
    ],
)
def test_refusals(settings, args, password, message):
    done = lienthong(settings, "user", "add", *args, env=_env(settings, password), check=False)
    assert done.returncode == 1 and message in done.stderr and "Traceback" not in done.stderr


def test_no_terminal_and_no_variable(settings):
    env = env_for(settings)
    env.pop("LIENTHONG_CONSOLE_PASSWORD", None)
    done = lienthong(settings, "user", "add", "y", "--role", "auditor", env=env, check=False)
    assert done.returncode == 1 and "LIENTHONG_CONSOLE_PASSWORD" in done.stderr
