"""The web console in a real browser: Debian's Chromium driven by Playwright (launched on the
system's executable; Playwright's own browser builds are never downloaded).

Sign-in, each page, a form whose CSRF token was tampered with, a clerk opening another
agency's document (404). Each page is also photographed: set LIENTHONG_CONSOLE_SHOTS to a folder
(``docs/console`` refreshes the README's screenshots) to keep the small PNGs.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import os
import shutil
import uuid
from pathlib import Path

import pytest
from PIL import Image

from exchange.registry import Agency
from tests.support.console import PASSWORD, add_user
from tests.support.demo_flow import run_exchange
from tests.support.traffic import AGENCIES, generate_month

CHROMIUM = os.environ.get("LIENTHONG_CHROMIUM", "/usr/bin/chromium")
CENTRAL, PROVINCE, OTHER = "000.00.00.G22", "000.00.00.H49", "000.00.00.H47"
NOVEMBER = "from=2026-11-01&to=2026-11-30"

pytestmark = pytest.mark.skipif(
    shutil.which(CHROMIUM) is None,
    reason="needs Debian's chromium: apt-get install chromium chromium-driver (.ci/setup does)",
)


@pytest.fixture(scope="module")
async def site(exchange):
    """A month of generated traffic, the demo's exchange, and one user of each role."""
    await generate_month(exchange.hub.pool, 2026, 11, documents=300, seed=7)
    # Hoành Bồ was merged into Hạ Long in 2020: a retired code with its successor
    await exchange.hub.registry.upsert(
        [
            Agency(
                "000.00.12.H49",
                "UBND huyện Hoành Bồ",
                PROVINCE,
                "district",
                valid_to=dt.date(2019, 12, 31),
                successor="000.00.10.H49",
            )
        ]
    )
    # every registered code gets a queue (the registry's NOTIFY): all are removed afterwards
    exchange.codes.extend([a.code for a in AGENCIES] + ["000.00.12.H49"])
    for code in (CENTRAL, PROVINCE, "000.00.10.H49", "000.05.10.H49", "000.00.11.H49"):
        await exchange.hub.broker.ensure_agency(code)
    sent = await run_exchange(exchange, CENTRAL, [PROVINCE, "000.00.10.H49", "000.05.10.H49"])
    hub = exchange.hub
    # a copy that never arrived (as if the broker lost it an hour ago), for the operator
    lost = await run_exchange(exchange, CENTRAL, ["000.00.11.H49"])
    await hub.pool.execute(
        "UPDATE packages SET received_at = now() - interval '1 hour' WHERE id = $1",
        uuid.UUID(lost["id"]),
    )
    await hub.pool.execute(
        "UPDATE deliveries SET state = 'pending', delivered_at = NULL WHERE package_id = $1",
        uuid.UUID(lost["id"]),
    )
    await add_user(hub, "vanhanh", "operator")
    await add_user(hub, "vanthu", "clerk", PROVINCE)
    await add_user(hub, "vanthu-qnam", "clerk", OTHER)
    await hub.ledger.sign_head()
    return {
        "url": exchange.url,
        "doc": sent["id"],
        "document_id": sent["document_id"],
        "lost": lost["id"],
        "pool": hub.pool,
    }


@pytest.fixture(scope="module")
async def browser():
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        launched = await p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        await launched.close()


async def _signed_in_page(browser, url: str, user: str, **context):
    ctx = await browser.new_context(viewport={"width": 1100, "height": 760}, **context)
    page = await ctx.new_page()
    await page.goto(f"{url}/console/dashboard")
    assert "/console/login" in page.url  # no session: to the sign-in form
    await page.fill("input[name=user]", user)
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url("**/console/dashboard")
    return page


def _keep(shot: bytes, name: str, tmp: Path) -> Path:
    """Reduce a screenshot to a 64-colour PNG (tens of KB); keep it where asked."""
    image = Image.open(io.BytesIO(shot)).convert("RGB").quantize(colors=64)
    folder = Path(os.environ.get("LIENTHONG_CONSOLE_SHOTS") or tmp)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    image.save(path, optimize=True)
    return path


async def _shoot(page, name: str, tmp: Path) -> None:
    path = _keep(await page.screenshot(), name, tmp)
    assert 5_000 < path.stat().st_size < 150_000, (name, path.stat().st_size)


async def test_operator_sees_every_page(site, browser, tmp_path):
    url = site["url"]
    page = await _signed_in_page(browser, url, "vanhanh")
    await page.goto(f"{url}/console/dashboard?{NOVEMBER}")
    assert await page.locator("svg.chart").count() == 4
    sent = await page.inner_text("[data-figure=documents_sent] .big")
    assert int(sent.replace(".", "")) == 300
    await _shoot(page, "dashboard", tmp_path)
    await page.goto(f"{url}/console/dashboard?{NOVEMBER}&lang=en")
    assert "Backlog" in await page.inner_text("main")
    await page.goto(f"{url}/console/sent?lang=vi")
    assert await page.locator(f"a[href='/console/documents/{site['doc']}']").count() == 1
    await _shoot(page, "documents", tmp_path)
    await page.goto(f"{url}/console/documents/{site['doc']}")
    assert site["document_id"] in await page.inner_text("h1")
    assert await page.locator("tr[data-recipient]").count() == 3
    await _shoot(page, "document", tmp_path)
    await page.goto(f"{url}/console/registry")
    assert await page.locator("tr[data-code]").count() == 9
    retired = page.locator("tr[data-code='000.00.12.H49']")
    assert await retired.locator("td.retired").count() == 1
    assert "000.00.10.H49" in await retired.inner_text()
    await _shoot(page, "registry", tmp_path)
    await page.goto(f"{url}/console/registry?q=Hạ Long")
    assert await page.locator("tr[data-code]").count() == 1
    await page.goto(f"{url}/console/ledger?package={site['doc']}")
    results = await page.locator("[data-result]").all_inner_texts()
    assert results and all("hợp lệ" in r or "chưa" in r for r in results)
    assert await page.locator("[data-result=ok]").count() >= 1
    await _shoot(page, "ledger", tmp_path)
    await page.goto(f"{url}/console/operations")
    assert await page.locator("tr[data-client]").count() >= 4
    await _shoot(page, "operations", tmp_path)
    # redeliver the copy that never arrived: it reaches the inbox, the ledger names who asked
    await page.click("form[action='/console/operations/redeliver'] button")
    assert await page.locator("[data-outcome=done]").count() == 1
    by = await site["pool"].fetchval(
        "SELECT detail->>'by' FROM events WHERE event = 'console_action' AND package_id = $1",
        uuid.UUID(site["lost"]),
    )
    assert by == "vanhanh"
    for _ in range(100):
        state = await site["pool"].fetchval(
            "SELECT state FROM deliveries WHERE package_id = $1", uuid.UUID(site["lost"])
        )
        if state == "delivered":
            break
        await asyncio.sleep(0.1)
    assert state == "delivered"


async def test_clerk_inbox_and_another_agencys_document(site, browser, tmp_path):
    url = site["url"]
    page = await _signed_in_page(browser, url, "vanthu")
    await page.goto(f"{url}/console/inbox")
    assert site["document_id"] in await page.inner_text("main")
    await _shoot(page, "inbox", tmp_path)
    other = await _signed_in_page(browser, url, "vanthu-qnam")
    response = await other.goto(f"{url}/console/documents/{site['doc']}")
    assert response.status == 404
    assert await other.locator("[data-code='package.not_found']").count() == 1
    assert site["document_id"] not in await other.content()


async def test_a_form_with_a_wrong_csrf_token_is_refused(site, browser):
    url = site["url"]
    page = await _signed_in_page(browser, url, "vanhanh", bypass_csp=True)
    await page.goto(f"{url}/console/operations")
    form = page.locator("form[action='/console/operations/revoke']").first
    await form.locator("input[name=csrf]").evaluate("e => { e.value = 'tampered' }")
    async with page.expect_response("**/console/operations/revoke") as answer:
        await form.locator("button").click()
    response = await answer.value
    assert response.status == 403
    assert await page.locator("[data-code='console.csrf_invalid']").count() == 1
    await page.goto(f"{url}/console/operations")
    assert await page.locator("form[action='/console/operations/revoke']").count() >= 4


async def test_sign_in_page_and_a_wrong_password(browser, site, tmp_path):
    ctx = await browser.new_context(viewport={"width": 820, "height": 600})
    page = await ctx.new_page()
    await page.goto(f"{site['url']}/console/login")
    await _shoot(page, "login", tmp_path)
    await page.fill("input[name=user]", "vanhanh")
    await page.fill("input[name=password]", "khong-dung-mat-khau")
    await page.click("button[type=submit]")
    assert await page.locator("[data-code='console.bad_login']").count() == 1


async def test_pages_fit_a_tablet(site, browser, tmp_path):
    url = site["url"]
    page = await _signed_in_page(browser, url, "vanhanh")
    await page.set_viewport_size({"width": 768, "height": 1024})
    for path in (f"dashboard?{NOVEMBER}", "sent", f"documents/{site['doc']}", "registry", "ledger"):
        await page.goto(f"{url}/console/{path}")
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= 768, (path, width)
    await page.goto(f"{url}/console/dashboard?{NOVEMBER}&lang=en")
    await _shoot(page, "dashboard-tablet-en", tmp_path)
