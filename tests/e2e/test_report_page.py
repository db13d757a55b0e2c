"""The reports over HTTP (a real uvicorn, behind the API key) and the HTML page in a real browser.

The page is opened in Debian's headless Chromium, driven by Selenium through the system's
chromedriver (nothing downloaded): every chart must have drawn on its canvas, and the
browser's console must hold no error. A screenshot is saved with the test's files; with
``SEQUENCER_UPDATE_SCREENSHOT=1`` it also replaces docs/report-screenshot.png (the README's).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import report_support
from peers import missing_peer
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from sqlalchemy.engine import Engine
from suppression_fixtures import live_server

from sequencer.app.api import create_app
from sequencer.core import api_keys
from sequencer.core.clock import SimulatedClock
from sequencer.core.config import Settings
from sequencer.core.db import session as new_session
from sequencer.reports import deliverability, page, pipeline
from sequencer.reports.period import scope

pytestmark = pytest.mark.e2e

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "report-screenshot.png"


@pytest.fixture
def filled(engine: Engine, settings: Settings, clock: SimulatedClock) -> Settings:
    with new_session(engine) as session:
        report_support.world(session, clock.now())
    return settings


@pytest.fixture
def server(engine: Engine, filled: Settings, clock: SimulatedClock) -> Iterator[str]:
    with live_server(create_app(filled, engine, clock)) as base:
        yield base


def key(engine: Engine, clock: SimulatedClock, scopes: tuple[str, ...]) -> dict[str, str]:
    with new_session(engine) as session:
        made = api_keys.create(session, clock.now(), "manager-" + "-".join(scopes), list(scopes))
        return {"Authorization": f"Bearer {made.key}"}


def test_serve_gives_the_reports_only_with_a_key(server, engine, clock) -> None:
    assert httpx.get(f"{server}/reports/deliverability").status_code == 401
    assert httpx.get(f"{server}/reports/pipeline", headers=key(engine, clock, ("inbound",))).status_code == 403
    admin = key(engine, clock, ("admin",))

    as_json = httpx.get(f"{server}/reports/deliverability", headers=admin)
    as_html = httpx.get(f"{server}/reports/pipeline", params={"format": "html"}, headers=admin)
    as_csv = httpx.get(f"{server}/reports/deliverability", params={"format": "csv", "mailbox": report_support.JO},
                       headers=admin)
    backwards = httpx.get(f"{server}/reports/pipeline", params={"since": "2026-12-01", "until": "2026-11-01"},
                          headers=admin)
    unknown = httpx.get(f"{server}/reports/deliverability", params={"domain": "nowhere.example"}, headers=admin)

    assert as_json.status_code == 200 and as_json.json()["mailboxes"][1]["address"] == report_support.SAM
    assert as_html.headers["content-type"].startswith("text/html") and "<canvas" in as_html.text
    assert as_csv.text.startswith("section,key,metric,value") and report_support.SAM not in as_csv.text
    assert backwards.status_code == 400 and "--since" in backwards.json()["detail"]
    assert unknown.status_code == 400 and "no mailbox sends from 'nowhere.example'" in unknown.json()["detail"]
    assert httpx.get(f"{server}/reports/elsewhere", headers=admin).status_code == 422


@pytest.fixture
def browser() -> Iterator[webdriver.Chrome]:
    for program in (CHROMIUM, CHROMEDRIVER):  # Debian's chromium and chromium-driver; .ci/run installs them
        if not Path(program).exists():
            missing_peer(f"{program} is not installed (apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1400,1600"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


# The canvas has been drawn on: some pixel is not fully transparent.
_DRAWN = """const c = document.getElementById(arguments[0]);
const data = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
for (let i = 3; i < data.length; i += 4) { if (data[i] !== 0) return true; } return false;"""


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_page_renders_its_charts_in_a_real_browser(filled, engine, clock, browser, tmp_path) -> None:
    with new_session(engine) as session:
        period = scope(session, clock.now())
        pages = {"deliverability": page.render(deliverability.build(session, clock.now(), filled, period)),
                 "pipeline": page.render(pipeline.build(session, clock.now(), filled, period))}
    for name, text in pages.items():
        path = tmp_path / f"{name}.html"
        path.write_text(text, encoding="utf-8")
        browser.get(path.as_uri())

        charts = browser.execute_script("return Object.keys(window.charts || {})")
        assert len(charts) == 3, name
        assert {chart: browser.execute_script(_DRAWN, chart) for chart in charts} == dict.fromkeys(charts, True)
        errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
        assert errors == []
        shot = tmp_path / f"{name}.png"
        browser.save_screenshot(str(shot))
        assert shot.stat().st_size > 10_000
        if name == "deliverability" and os.environ.get("SEQUENCER_UPDATE_SCREENSHOT") == "1":
            shutil.copyfile(shot, SCREENSHOT)
