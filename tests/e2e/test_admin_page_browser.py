"""The admin page in a real browser (Debian's Chromium, driven by Selenium; `make browser` installs it),
against the three services as processes: the operator's key opens it, every panel fills from the live
APIs across origins (CORS), a repair job runs from its button, and a reader's key is turned away."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from collections.abc import Callable

import aiohttp
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.conftest import ADMIN, eventually
from tests.e2e.conftest import e2e_names, running_services
from tests.photos import skimage_photo, unique_png
from tests.processes import ServiceProcess
from tests.uploads import image_form

pytestmark = pytest.mark.e2e

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


def _names() -> dict:
    return {k: (v.replace("e2e", "adminui") if isinstance(v, str) and k != "admin_key" else v) for k, v in e2e_names().items()}


@pytest.fixture(scope="module")
async def services(tmp_path_factory):
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        pytest.fail("Chromium is missing: `make browser` installs it (make test runs it first)")

    def across_origins(procs: dict[str, ServiceProcess]) -> None:
        """The page comes from search's origin and calls ingest and annotation at theirs."""
        for name in ("ingest", "annotation"):
            procs[name].env["CORPUS_CORS_ORIGINS"] = json.dumps([procs["search"].url])
        procs["search"].env.update(CORPUS_ADMIN_INGEST_URL=procs["ingest"].url, CORPUS_ADMIN_ANNOTATION_URL=procs["annotation"].url)

    async with running_services(_names(), tmp_path_factory.mktemp("admin-ui-logs"), across_origins) as procs:
        yield procs


@pytest.fixture
def browser(tmp_path):
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000", f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    yield driver
    driver.quit()
    shutil.rmtree(tmp_path / "profile", ignore_errors=True)


async def _in_browser(work: Callable[[], object]) -> object:
    """Selenium blocks: it runs in a thread while this loop goes on (the services are other processes anyway)."""
    return await asyncio.to_thread(work)


def _wait_text(driver, selector: str, expected: str, timeout: float = 30) -> str:
    WebDriverWait(driver, timeout).until(lambda d: expected in d.find_element(By.CSS_SELECTOR, selector).text)
    return driver.find_element(By.CSS_SELECTOR, selector).text


def _open_with(driver, url: str, key: str) -> None:
    driver.get(f"{url}/admin")
    WebDriverWait(driver, 30).until(lambda d: d.find_element(By.ID, "login").is_displayed())
    driver.find_element(By.ID, "key").send_keys(key)
    driver.find_element(By.CSS_SELECTOR, "#login button").click()


async def test_an_admin_sees_every_panel_filled_and_runs_a_repair(services, browser):
    ingest, search = services["ingest"].url, services["search"].url
    async with aiohttp.ClientSession(headers=ADMIN) as http:
        async with http.post(f"{ingest}/v1/images", data=image_form(unique_png(skimage_photo("coffee.png")), "coffee.png", tags="adminui")) as stored:
            assert stored.status == 201, await stored.text()
        async with http.post(f"{ingest}/v1/images", data=image_form(b"%PDF-1.4 not a photo", "report.pdf")) as refused:
            assert refused.status == 422
        async with http.post(f"{services['annotation'].url}/v1/labels", json={"name": "espresso cup"}) as label:
            assert label.status in (200, 201)

        async def searchable() -> bool:
            async with http.get(f"{search}/v1/search", params={"tags": "adminui"}) as found:
                return (await found.json())["total"] == 1

        await eventually(searchable)  # the page's counts read the index: the image must be in it first

    def operate() -> dict[str, str]:
        _open_with(browser, search, ADMIN["Authorization"].split()[1])
        seen = {
            "who": _wait_text(browser, "#who", "(admin)"),
            "services": _wait_text(browser, "#services", "annotation"),
            "corpus": _wait_text(browser, "#corpus", "1 images"),
            "queues": _wait_text(browser, "#queues", ".search"),
            "rejections": _wait_text(browser, "#rejections", "report.pdf"),
            "labels": _wait_text(browser, "#labels", "espresso cup"),
        }
        browser.find_element(By.CSS_SELECTOR, 'button[data-job="reconcile"]').click()
        seen["index"] = _wait_text(browser, "#index .body", "succeeded", timeout=60)
        seen["errors"] = " ".join(e.text for e in browser.find_elements(By.CSS_SELECTOR, ".error"))
        return seen

    seen = await _in_browser(operate)
    assert seen["services"].count("ready") == 3 and "not ready" not in seen["services"]
    assert "png (1)" in seen["corpus"]
    assert "unsupported_format" in seen["rejections"] and "PDF" in seen["rejections"]
    assert all(f"{services['search'].env['CORPUS_AMQP_EXCHANGE']}.{s}" in seen["queues"] for s in ("ingest", "annotation", "search"))
    assert '"expected":1' in seen["index"] and '"drift":0' in seen["index"]  # the job's result, as the page shows it
    assert seen["errors"].strip() == ""  # no panel failed (a CORS refusal would show here)


async def test_a_readers_key_is_turned_away(services, browser):
    async with aiohttp.ClientSession(headers=ADMIN) as http:
        annotation = services["annotation"].url
        async with http.post(f"{annotation}/v1/users", json={"name": "a viewer", "role": "reader"}) as made:
            user_id = (await made.json())["id"]
        async with http.post(f"{annotation}/v1/users/{user_id}/keys", json={"label": "admin page test"}) as issued:
            key = (await issued.json())["key"]

    def try_reader() -> tuple[str, bool]:
        _open_with(browser, services["search"].url, key)
        message = _wait_text(browser, "#login-error", "admin")
        return message, browser.find_element(By.ID, "panels").is_displayed()

    message, panels_shown = await _in_browser(try_reader)
    assert "role is reader" in message and not panels_shown
