"""The web console over HTTP: sign-in, sessions, CSRF, lock-out, roles and visibility."""

from __future__ import annotations

import re
import uuid

import aiohttp
import pytest

from tests.support.console import PASSWORD, add_user, csrf_of, signed_in
from tests.support.demo_flow import run_exchange

CENTRAL, PROVINCE, DISTRICT, OTHER = (
    "000.00.00.G22",
    "000.00.00.H49",
    "000.00.10.H49",
    "000.00.00.H47",
)


@pytest.fixture(scope="module")
async def site(exchange):
    await exchange.register(
        (CENTRAL, "Văn phòng Chính phủ"),
        (PROVINCE, "UBND tỉnh Quảng Ninh"),
        (DISTRICT, "UBND thành phố Hạ Long"),
        (OTHER, "UBND tỉnh Quảng Nam"),
    )
    sent = await run_exchange(exchange, CENTRAL, [PROVINCE, DISTRICT])
    hub = exchange.hub
    await add_user(hub, "vanhanh", "operator")
    await add_user(hub, "kiemtoan", "auditor")
    await add_user(hub, "vanthu-qn", "clerk", PROVINCE)
    await add_user(hub, "vanthu-qnam", "clerk", OTHER)
    await add_user(hub, "khoa", "clerk", DISTRICT)
    return {"url": exchange.url, "doc": sent["id"], "document_id": sent["document_id"]}


async def _get(session, url: str):
    async with session.get(url, allow_redirects=False) as r:
        return r.status, await r.text(), r.headers


async def test_pages_need_a_session(site):
    async with aiohttp.ClientSession() as anonymous:
        status, _, headers = await _get(anonymous, f"{site['url']}/console/dashboard")
    assert status == 303 and headers["Location"].startswith("/console/login")


async def test_sign_in_and_every_page_of_each_role(site):
    url = site["url"]
    for name, pages in (
        ("vanhanh", ["dashboard", "sent", "registry", "ledger", "operations"]),
        ("kiemtoan", ["dashboard", "sent", "registry", "ledger"]),
        ("vanthu-qn", ["dashboard", "inbox", "sent", "registry", "ledger"]),
    ):
        session = await signed_in(url, name)
        async with session:
            for page in pages:
                status, html, headers = await _get(session, f"{url}/console/{page}")
                assert status == 200, (name, page, html[:300])
                assert "script-src" not in headers["Content-Security-Policy"]
                assert "<script" not in html
            status, html, _ = await _get(session, f"{url}/console/documents/{site['doc']}")
            assert status == 200 and site["document_id"] in html
    async with await signed_in(url, "vanhanh") as session:
        _, html, _ = await _get(session, f"{url}/console/dashboard")
        assert html.count("<svg") == 4 and "Tồn đọng" in html
        _, html, _ = await _get(session, f"{url}/console/dashboard?lang=en")
        assert "Backlog" in html and 'lang="en"' in html


async def test_the_console_root_and_the_sign_in_page_once_signed_in(site):
    url = site["url"]
    async with await signed_in(url, "kiemtoan") as session:
        for path in ("/console", "/console/", "/console/login?next=/console/registry"):
            status, _, headers = await _get(session, f"{url}{path}")
            assert status == 303, path
        assert headers["Location"] == "/console/registry"
        status, _, headers = await _get(session, f"{url}/console/login?next=//evil.example/")
        assert headers["Location"] == "/console/dashboard"  # never off the console


async def test_roles_that_may_not_see_a_page_get_403(site):
    url = site["url"]
    async with await signed_in(url, "kiemtoan") as session:
        status, html, _ = await _get(session, f"{url}/console/operations")
        assert status == 403 and 'data-code="console.forbidden"' in html
        status, _, _ = await _get(session, f"{url}/console/inbox")
        assert status == 403
    async with await signed_in(url, "vanthu-qn") as session:
        status, _, _ = await _get(session, f"{url}/console/operations")
        assert status == 403


async def test_a_clerk_never_sees_another_agencys_document(site):
    url = site["url"]
    async with await signed_in(url, "vanthu-qnam") as session:
        for path in (f"documents/{site['doc']}", f"documents/{site['doc']}/evidence"):
            status, html, _ = await _get(session, f"{url}/console/{path}")
            assert status == 404 and 'data-code="package.not_found"' in html
        _, html, _ = await _get(session, f"{url}/console/ledger?package={site['doc']}")
        assert 'data-code="package.not_found"' in html
        _, html, _ = await _get(session, f"{url}/console/sent")
        assert site["document_id"] not in html
        _, html, _ = await _get(session, f"{url}/console/inbox")
        assert site["document_id"] not in html


async def test_a_clerk_sees_its_own_copy_only(site):
    url = site["url"]
    async with await signed_in(url, "khoa") as session:
        status, html, _ = await _get(session, f"{url}/console/documents/{site['doc']}")
        assert status == 200
        assert f'data-recipient="{DISTRICT}"' in html and f'data-recipient="{PROVINCE}"' not in html
        async with session.get(f"{url}/console/documents/{site['doc']}/evidence") as r:
            assert r.status == 200 and (await r.read())[:2] == b"PK"


async def test_forms_without_the_right_csrf_token_are_refused(site):
    url = site["url"]
    async with await signed_in(url, "vanhanh") as session:
        for token in ("", "wrong-token"):
            async with session.post(
                f"{url}/console/operations/revoke", data={"csrf": token, "client_id": "x"}
            ) as r:
                assert r.status == 403 and 'data-code="console.csrf_invalid"' in await r.text()
    jar = aiohttp.CookieJar(unsafe=True)
    async with (
        aiohttp.ClientSession(cookie_jar=jar) as fresh,
        fresh.post(
            f"{url}/console/login",
            data={"csrf": "forged", "user": "vanhanh", "password": PASSWORD},
            allow_redirects=False,
        ) as r,
    ):
        assert r.status == 403


async def test_a_forged_or_tampered_cookie_is_no_session(site):
    url = site["url"]
    async with await signed_in(url, "vanhanh") as session:
        cookie = next(c for c in session.cookie_jar if c.key == "lienthong_console")
        value = cookie.value
    async with aiohttp.ClientSession(cookies={"lienthong_console": value}) as genuine:
        assert (await _get(genuine, f"{url}/console/dashboard"))[0] == 200
    for forged in (
        value[:-4] + ("AAAA" if not value.endswith("AAAA") else "BBBB"),
        "e30",
        "x" * 5000,
    ):
        async with aiohttp.ClientSession(cookies={"lienthong_console": forged}) as session:
            status, _, _ = await _get(session, f"{url}/console/dashboard")
            assert status == 303


async def test_lock_out_after_repeated_failures(site, exchange):
    url = site["url"]
    await add_user(exchange.hub, "bi-khoa", "auditor")
    limit = exchange.hub.settings.console_lockout_failures
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        for attempt in range(limit + 1):
            async with session.get(f"{url}/console/login") as r:
                token = csrf_of(await r.text())
            password = PASSWORD if attempt == limit else "sai-mat-khau"
            async with session.post(
                f"{url}/console/login",
                data={"csrf": token, "user": "bi-khoa", "password": password},
                allow_redirects=False,
            ) as r:
                html = await r.text()
            want = "console.locked" if attempt == limit else "console.bad_login"
            assert f'data-code="{want}"' in html, attempt
            assert r.status == (429 if attempt == limit else 401)
    user = await exchange.hub.stores.console.user("bi-khoa")
    assert user["locked"]


async def test_unknown_user_and_wrong_password_look_the_same(site):
    url = site["url"]
    answers = []
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        for user in ("khong-co-ai", "kiemtoan"):
            async with session.get(f"{url}/console/login") as r:
                token = csrf_of(await r.text())
            async with session.post(
                f"{url}/console/login",
                data={"csrf": token, "user": user, "password": "sai-mat-khau"},
            ) as r:
                answers.append((r.status, re.sub(r'value="[^"]+"', "", await r.text())))
    assert answers[0] == answers[1]


async def test_redeliver_and_revoke_are_recorded_in_the_ledger_with_who(site, exchange):
    url = site["url"]
    hub = exchange.hub
    from exchange.auth import issue_credentials

    client_id = (await issue_credentials(hub.credentials, OTHER)).client_id
    async with await signed_in(url, "vanhanh") as session:
        _, html, _ = await _get(session, f"{url}/console/operations")
        token = csrf_of(html)
        async with session.post(
            f"{url}/console/operations/revoke", data={"csrf": token, "client_id": client_id}
        ) as r:
            assert r.status == 200 and 'data-outcome="done"' in await r.text()
        async with session.post(
            f"{url}/console/operations/revoke", data={"csrf": token, "client_id": client_id}
        ) as r:
            assert r.status == 409
        async with session.post(
            f"{url}/console/operations/redeliver", data={"csrf": token, "delivery": "999999"}
        ) as r:
            assert r.status == 409
    row = await hub.pool.fetchrow(
        "SELECT organ_id, detail FROM events WHERE event = 'console_action' "
        "ORDER BY id DESC LIMIT 1"
    )
    assert row["organ_id"] == OTHER
    assert row["detail"] == {
        "action": "revoke_credentials",
        "by": "vanhanh",
        "client_id": client_id,
    }
    assert (await hub.credentials.client(client_id))["revoked_at"] is not None


async def test_redeliver_a_pending_delivery(site, exchange):
    hub = exchange.hub
    delivery = await hub.pool.fetchval(
        "SELECT id FROM deliveries WHERE package_id = $1 LIMIT 1",
        uuid.UUID(site["doc"]),
    )
    await hub.pool.execute("UPDATE deliveries SET state = 'pending' WHERE id = $1", delivery)
    assert await hub.stores.console.redeliver(delivery, "vanhanh")
    row = await hub.pool.fetchrow(
        "SELECT detail FROM events WHERE event = 'console_action' ORDER BY id DESC LIMIT 1"
    )
    assert row["detail"] == {"action": "redeliver", "by": "vanhanh", "delivery": delivery}


async def test_signing_out_voids_the_cookie_even_if_kept(site):
    url = site["url"]
    session = await signed_in(url, "kiemtoan")
    async with session:
        cookie = next(c for c in session.cookie_jar if c.key == "lienthong_console").value
        _, html, _ = await _get(session, f"{url}/console/dashboard")
        async with aiohttp.ClientSession(cookies={"lienthong_console": cookie}) as copy:
            status, _, _ = await _get(copy, f"{url}/console/dashboard")
            assert status == 200  # the same cookie, sent by another client, works until...
        async with session.post(
            f"{url}/console/logout", data={"csrf": csrf_of(html)}, allow_redirects=False
        ) as r:
            assert r.status == 303
    async with aiohttp.ClientSession(cookies={"lienthong_console": cookie}) as stolen:
        status, _, _ = await _get(stolen, f"{url}/console/dashboard")
        assert status == 303
    async with await signed_in(url, "kiemtoan") as again:
        status, _, _ = await _get(again, f"{url}/console/dashboard")
        assert status == 200


async def test_the_dashboards_report_to_print_and_as_csv(site):
    url = site["url"]
    async with await signed_in(url, "vanthu-qn") as session:
        async with session.get(f"{url}/console/report.html?lang=en") as r:
            html = await r.text()
            assert r.status == 200 and "Document exchange KPI report" in html
            assert html.count("<svg") == 4 and PROVINCE in html  # a clerk's own agency
        async with session.get(f"{url}/console/report.csv") as r:
            text = await r.text()
            assert r.status == 200 and r.headers["Content-Disposition"].startswith("attachment")
        assert text.startswith("scope,figure,value") and f"agency:{PROVINCE}" in text
        assert f"agency:{CENTRAL}" not in text
        async with session.get(f"{url}/console/report.pdf") as r:
            assert r.status == 404
        async with session.get(f"{url}/console/report.csv?from=nope") as r:
            assert r.status == 400


async def test_a_recall_shows_as_the_copys_disposition(site, exchange):
    from schemas import build_status

    sender = await exchange.client(CENTRAL)
    await sender.submit(
        build_status(
            sender=CENTRAL,
            response_for_organ_id=PROVINCE,
            response_for_document_id=site["document_id"],
            status_code="13",
            description="Thu hồi",
            staff="Văn thư",
        )
    )
    async with await signed_in(site["url"], "kiemtoan") as session:
        _, html, _ = await _get(session, f"{site['url']}/console/documents/{site['doc']}")
    row = re.search(rf'data-recipient="{PROVINCE}".*?</tr>', html, re.S).group(0)
    assert 'data-disposition="recall_requested"' in row
    other = re.search(rf'data-recipient="{DISTRICT}".*?</tr>', html, re.S).group(0)
    assert 'data-disposition="active"' in other


async def test_one_address_trying_many_names_is_throttled(site, exchange):
    """Last in this module: it exhausts 127.0.0.1's allowance of failed sign-ins."""
    url = site["url"]
    limit = exchange.hub.settings.login_failures_per_address
    statuses = []
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        for n in range(limit + 1):
            async with session.get(f"{url}/console/login") as r:
                token = csrf_of(await r.text())
            async with session.post(
                f"{url}/console/login",
                data={"csrf": token, "user": f"ten-{n}", "password": "doan-mo-mat-khau"},
            ) as r:
                statuses.append(r.status)
                html = await r.text()
    assert statuses[-1] == 429 and 'data-code="auth.throttled"' in html
    # a user who signed in from here before is not locked out by the stranger
    async with await signed_in(url, "vanhanh") as session:
        assert (await _get(session, f"{url}/console/dashboard"))[0] == 200
