"""Reorganisation mappings against a real registry: every bad input is listed with a stable
kind and changes nothing; a good one applies once, and again harmlessly; history is kept."""

from __future__ import annotations

import datetime as dt

import pytest

from exchange import demo_reorganisation as demo
from exchange.mapping import read_mapping
from exchange.registry import Agency
from exchange.reorganise import apply_reorganisation
from exchange.store import database as db
from exchange.store.registry import PostgresRegistry, today
from exchange.succession import predecessors, route_recipients
from tests.conftest import make_settings

HEADER = "old,new,effective,kind,parent\n"
EARLIER = "000.00.00.H90"  # retired into LATER in 2024
LATER = "000.00.00.H91"


@pytest.fixture
async def registry(tmp_path):
    settings = make_settings(tmp_path)
    await db.migrate(settings)
    pool = await db.connect(settings, min_size=1, max_size=2)
    reg = PostgresRegistry(pool)
    await reg.upsert(
        [
            Agency(demo.PROVINCE, "UBND tỉnh Quảng Ninh", None, "province"),
            Agency(demo.CITY, "UBND thành phố Hạ Long", demo.PROVINCE, "district"),
            Agency(demo.OLD_WARD, "UBND phường Hồng Gai", demo.CITY, "commune"),
            *demo.OLD_PROVINCES,
            *demo.NEW_UNITS,
            Agency(
                EARLIER,
                "UBND tỉnh A",
                None,
                "province",
                valid_to=dt.date(2024, 12, 31),
                successor=LATER,
            ),
            Agency(LATER, "UBND tỉnh B", None, "province"),
        ]
    )
    try:
        yield reg
    finally:
        await pool.close()
        await db.drop_schema(settings)


async def _versions(registry) -> int:
    return await registry.pool.fetchval("SELECT count(*) FROM agency_versions")


async def _plan(registry, tmp_path, text: str, suffix: str = ".csv", dry_run: bool = False):
    path = tmp_path / f"mapping{suffix}"
    path.write_text(text, encoding="utf-8")
    rows, problems = read_mapping(path)
    plan = await apply_reorganisation(registry, rows, by="t", reason="r", dry_run=dry_run)
    return problems + plan.problems, plan


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        (
            f"{HEADER}{demo.CITY},{demo.HONG_GAI},2025-07-01,merge,\n"
            f"{demo.CITY},{demo.HA_LONG},2025-07-01,merge,\n",
            "mapping.duplicate",
        ),
        (f"{HEADER}{LATER},{EARLIER},2025-07-01,merge,\n", "mapping.cycle"),
        (f"{HEADER}000.00.99.H49,{demo.HONG_GAI},2025-07-01,merge,\n", "mapping.unknown_code"),
        (f"{HEADER}{demo.CITY},000.00.98.H49,2025-07-01,merge,\n", "mapping.unknown_successor"),
        (
            f"{HEADER}{demo.CITY},{demo.HONG_GAI},2025-06-01,merge,\n",
            "mapping.successor_not_active",
        ),
        (f"{HEADER}{demo.CITY},{demo.HONG_GAI},2025-08-01,merge,\n", "mapping.successor_too_early"),
        (
            f"{HEADER}{demo.OLD_WARD},{demo.HONG_GAI},2025-07-01,merge,\n"
            f"{demo.HONG_GAI},{demo.HA_LONG},2025-07-01,merge,\n",
            "mapping.successor_not_active",
        ),
        (f"{HEADER}{demo.CITY},{demo.HONG_GAI},1/7/2025,merge,\n", "mapping.bad_date"),
        (f"{HEADER}{demo.CITY},{demo.HONG_GAI},2025-07-01,annex,\n", "mapping.bad_kind"),
        (f"{HEADER}{demo.CITY},{demo.HONG_GAI},2025-07-01,split,\n", "mapping.arity"),
        (f"{HEADER}{demo.CITY},,2025-07-01,merge,\n", "mapping.arity"),
        (f"{HEADER}{demo.CITY},{demo.CITY},2025-07-01,merge,\n", "mapping.self"),
        (
            f"{HEADER}{demo.CITY},{demo.HONG_GAI},2025-07-01,merge,000.00.97.H49\n",
            "mapping.unknown_parent",
        ),
        (f"{HEADER}{EARLIER},{demo.HONG_GAI},2025-07-01,merge,\n", "mapping.already_retired"),
        (f"{HEADER}not-a-code,{demo.HONG_GAI},2025-07-01,merge,\n", "mapping.malformed"),
        ("code,name\nH49,X\n", "mapping.malformed"),
        ("{not json", "mapping.malformed"),
    ],
)
async def test_bad_mappings_are_refused_and_change_nothing(registry, tmp_path, text, kind):
    before = await _versions(registry)
    suffix = ".json" if text.startswith("{") else ".csv"
    problems, _ = await _plan(registry, tmp_path, text, suffix)
    assert kind in {p.kind for p in problems}, problems
    assert await _versions(registry) == before


async def test_every_conflict_is_listed_not_only_the_first(registry, tmp_path):
    problems, plan = await _plan(
        registry,
        tmp_path,
        f"{HEADER}{demo.CITY},{demo.HONG_GAI},2025-13-01,merge,\n"
        f"000.00.99.H49,{demo.HONG_GAI},2025-07-01,merge,\n"
        f"{demo.OLD_WARD},000.00.98.H49,2025-07-01,merge,\n",
    )
    assert [p.kind for p in problems] == [
        "mapping.bad_date",
        "mapping.unknown_code",
        "mapping.unknown_successor",
    ]
    assert all(p.where.startswith("mapping.csv line") for p in problems)


async def test_demo_reorganisation_dry_run_then_for_real_then_again(registry, tmp_path):
    _, mapping = demo.write_demo_files(tmp_path)
    rows, problems = read_mapping(mapping)
    assert problems == []
    before = await _versions(registry)
    dry = await apply_reorganisation(registry, rows, by="t", reason="r", dry_run=True)
    assert dry.problems == [] and await _versions(registry) == before
    assert {p: dict(c) for p, c in dry.per_province.items()} == {
        "H49": {"split": 1, "merge": 1},
        "H24": {"merge": 1},
    }
    assert any("district-level" in n for n in dry.notes) is False  # the city is retiring
    done = await apply_reorganisation(registry, rows, by="t", reason="r", dry_run=False)
    assert [v.code for v in done.versions] == [v.code for v in dry.versions]
    assert await _versions(registry) == before + 3
    again = await apply_reorganisation(registry, rows, by="t", reason="r", dry_run=False)
    assert (again.versions, again.unchanged, again.problems) == ([], 3, [])
    assert await _versions(registry) == before + 3
    city = await registry.history(demo.CITY)
    assert [(v.valid_to, v.successors) for v in city] == [
        (None, ()),
        (dt.date(2025, 6, 30), (demo.HONG_GAI, demo.HA_LONG, demo.BAI_CHAY)),
    ]
    then = await registry.as_of([demo.OLD_WARD], dt.date(2025, 6, 30))
    assert then[demo.OLD_WARD].active_on(dt.date(2025, 6, 30))


async def test_json_mapping_with_route_and_rename(registry, tmp_path):
    problems, plan = await _plan(
        registry,
        tmp_path,
        '{"mapping": ['
        f'{{"old": "{demo.CITY}", "new": ["{demo.HONG_GAI}", "{demo.HA_LONG}"], '
        '"effective": "2025-07-01", "kind": "split", "route": "all"},'
        f'{{"old": "{demo.BAC_NINH}", "new": "{demo.BAC_NINH}", "effective": "2025-07-01", '
        '"kind": "rename", "name": "UBND tỉnh Bắc Ninh (mới)"}]}',
        ".json",
    )
    assert problems == []
    city = (await registry.agencies([demo.CITY]))[demo.CITY]
    assert city.route_to == (demo.HONG_GAI, demo.HA_LONG)
    assert (await registry.agencies([demo.BAC_NINH]))[demo.BAC_NINH].name.endswith("(mới)")
    old_name = await registry.as_of([demo.BAC_NINH], dt.date(2025, 6, 30))
    assert old_name[demo.BAC_NINH].name == "UBND tỉnh Bắc Ninh"


async def test_a_remaining_district_after_the_two_tier_reform_is_noted(registry, tmp_path):
    problems, plan = await _plan(
        registry, tmp_path, f"{HEADER}{demo.BAC_GIANG},{demo.BAC_NINH},2025-07-01,merge,\n"
    )
    assert problems == []
    assert any(demo.CITY in note for note in plan.notes)


async def test_redirects_follow_routes_and_chains_of_successors(registry, tmp_path):
    """route=all sends a copy to each new code; a successor that retired in its turn is
    followed to today's code, and today's code answers for the whole chain."""
    problems, _ = await _plan(
        registry,
        tmp_path,
        "old,new,effective,kind,route\n"
        f"{demo.CITY},{demo.HONG_GAI};{demo.HA_LONG},2025-07-01,split,all\n"
        f"{demo.OLD_WARD},{demo.HONG_GAI},2025-07-01,merge,\n",
    )
    assert problems == []
    later = tmp_path / "later"
    later.mkdir()
    problems, _ = await _plan(
        registry, later, f"{HEADER}{demo.HONG_GAI},{demo.BAI_CHAY},2026-01-01,merge,\n"
    )
    assert problems == []
    day = today()
    split = await route_recipients(registry, (demo.CITY,), day, "redirect", "To")
    assert split.recipients == (demo.HA_LONG, demo.BAI_CHAY)  # nearest successors first
    assert split.redirected_from == {demo.BAI_CHAY: demo.CITY, demo.HA_LONG: demo.CITY}
    chain = await route_recipients(registry, (demo.OLD_WARD,), day, "redirect", "To")
    assert chain.recipients == (demo.BAI_CHAY,)
    assert set(await predecessors(registry, demo.BAI_CHAY, day)) == {
        demo.HONG_GAI,
        demo.OLD_WARD,
        demo.CITY,
    }
    # On a day between the two changes, the first successor still took the documents.
    between = await route_recipients(
        registry, (demo.OLD_WARD,), dt.date(2025, 9, 1), "redirect", "To"
    )
    assert between.recipients == (demo.HONG_GAI,)


def test_a_mapping_that_is_not_text_is_one_conflict(tmp_path):
    path = tmp_path / "mapping.csv"
    path.write_bytes(b"old,new\n\xff\xfe\x00")
    rows, problems = read_mapping(path)
    assert rows == [] and [p.kind for p in problems] == ["mapping.malformed"]


async def test_migration_keeps_existing_rows_as_their_first_versions(tmp_path):
    """Agencies registered before 0009 (a successor in the old single column) become first
    versions in force since always; the registry then answers as of any day."""
    import asyncpg

    settings = make_settings(tmp_path)
    conn = await asyncpg.connect(settings.database_url)
    try:
        schema = settings.database_schema
        await conn.execute(f'CREATE SCHEMA "{schema}"; SET search_path TO "{schema}"')
        for version, _, sql in db.migrations():
            if version < 9:
                await conn.execute(sql)
        await conn.execute(
            "INSERT INTO agencies (code, name, parent, level, valid_to, successor, routing_key) "
            "VALUES ('000.00.00.H33', 'UBND tỉnh cũ', NULL, 'province', '2025-06-30', "
            "'000.00.00.H49', 'H33.00.00.000'), ('000.00.00.H49', 'UBND tỉnh Quảng Ninh', NULL, "
            "'province', NULL, NULL, 'H49.00.00.000')"
        )
    finally:
        await conn.close()
    try:
        await db.migrate(settings)
        pool = await db.connect(settings, min_size=1, max_size=1)
        try:
            registry = PostgresRegistry(pool)
            old = (await registry.as_of(["000.00.00.H33"], dt.date(2020, 1, 1)))["000.00.00.H33"]
            assert (old.name, old.successors, old.effective_from) == (
                "UBND tỉnh cũ",
                ("000.00.00.H49",),
                dt.date(1, 1, 1),
            )
            assert [v.code for v in (await registry.histories()).get("000.00.00.H49")] == [
                "000.00.00.H49"
            ]
            routed = await route_recipients(registry, ("000.00.00.H33",), today(), "redirect", "To")
            assert routed.recipients == ("000.00.00.H49",)
        finally:
            await pool.close()
    finally:
        await db.drop_schema(settings)


async def test_a_change_dated_tomorrow_routes_from_tomorrow(registry, tmp_path):
    tomorrow = today() + dt.timedelta(days=1)
    problems, _ = await _plan(
        registry, tmp_path, f"{HEADER}{demo.BAC_GIANG},{demo.BAC_NINH},{tomorrow},merge,\n"
    )
    assert problems == []
    now = await route_recipients(registry, (demo.BAC_GIANG,), today(), "redirect", "To")
    assert now.recipients == (demo.BAC_GIANG,) and now.redirected_from == {}
    later = await route_recipients(registry, (demo.BAC_GIANG,), tomorrow, "redirect", "To")
    assert later.recipients == (demo.BAC_NINH,)
    assert (await registry.agencies([demo.BAC_GIANG]))[demo.BAC_GIANG].valid_to is None
