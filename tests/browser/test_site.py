"""Real-browser tests: Debian's chromium, driven by Playwright, against the site served by uvicorn."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

from servefit.web import urls

from .conftest import shot

pytestmark = pytest.mark.browser

DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}

MODEL_ID = "qwen3-8b"
MODEL_QUERY = "qwen3 8b"
QUANT = "Q4_K_M"
TARGET_ID = "scaleway/l4-1-24g"

PAGES = [
    "/",
    "/search?q=qwen3",
    "/models",
    f"/models/{MODEL_ID}",
    f"/models/{MODEL_ID}/q4_k_m",
    "/hardware",
    "/hardware/scaleway/l4-2-24g",
    urls.deploy_url(MODEL_ID, QUANT, TARGET_ID),
    urls.deploy_url("nemotron-3-super-120b-a12b", "Q4_K_S", "scaleway/l4-2-24g"),
    urls.deploy_url("gpt-oss-120b", "MXFP4_MOE", "nvidia-h100-sxm-640gb"),
    "/no/such/page",
]


def _context(browser: Any, viewport: dict[str, int], **kwargs: Any) -> Any:
    return browser.new_context(viewport=viewport, **kwargs)


def test_search_reach_deploy_copy_and_values(browser: Any, server: str, artifacts: Path) -> None:
    ctx = _context(browser, DESKTOP, permissions=["clipboard-read", "clipboard-write"], accept_downloads=True)
    page = ctx.new_page()
    page.goto(server + "/")
    page.get_by_label("Search models and hardware").fill(MODEL_QUERY)
    page.get_by_role("button", name="Search").click()
    page.wait_for_url("**/search?q=*")
    page.locator("#models-list a", has_text="Qwen3 8B").first.click()
    page.wait_for_url(f"**/models/{MODEL_ID}")
    page.locator("#ladder th a", has_text=QUANT).click()
    page.wait_for_url(f"**/models/{MODEL_ID}/q4_k_m")
    page.locator(f'#targets-table a[href="{urls.deploy_url(MODEL_ID, QUANT, TARGET_ID)}"]').click()
    page.wait_for_url("**" + urls.deploy_url(MODEL_ID, QUANT, TARGET_ID))
    assert "Qwen3 8B (Q4_K_M)" in page.locator("h1").inner_text()
    shot(page, artifacts, "deploy-desktop")

    command = page.locator("#cmd-deploy").inner_text()
    assert command.startswith("helmfile --state-values-file <(curl")
    button = page.locator('button.copy[data-copy="#cmd-deploy"]')
    assert button.is_visible()
    button.click()
    page.wait_for_function("document.querySelector('button.copy[data-copy=\"#cmd-deploy\"]').textContent === 'Copied'")
    assert page.evaluate("navigator.clipboard.readText()") == command

    shown = page.locator("#values-text").inner_text()
    with page.expect_download() as info:
        page.locator("#values-link").click()
    download = info.value
    saved = artifacts / "values-download.yaml"
    download.save_as(str(saved))
    assert saved.read_text(encoding="utf-8").rstrip("\n") == shown.rstrip("\n")
    href = page.locator("#values-link").get_attribute("href")
    assert href == urls.values_url(MODEL_ID, QUANT, TARGET_ID)
    assert href in command
    response = page.request.get(server + href)
    assert response.ok
    assert response.headers["content-type"].startswith("text/yaml")
    ctx.close()


@pytest.mark.parametrize("viewport_name", ["desktop", "phone"])
def test_pages_fit_the_width(browser: Any, server: str, artifacts: Path, viewport_name: str) -> None:
    viewport = DESKTOP if viewport_name == "desktop" else PHONE
    ctx = _context(browser, viewport)
    page = ctx.new_page()
    for path in PAGES:
        page.goto(server + path)
        scroll = page.evaluate("document.documentElement.scrollWidth")
        inner = page.evaluate("window.innerWidth")
        name = path.strip("/").replace("/", "_").replace("?", "_").replace("=", "-") or "home"
        shot(page, artifacts, f"{viewport_name}-{name}", full_page=path.startswith("/deploy/") or path == "/")
        assert scroll <= inner, (path, viewport_name, scroll, inner)
    ctx.close()


def test_accessibility_basics(browser: Any, server: str) -> None:
    ctx = _context(browser, DESKTOP)
    page = ctx.new_page()
    for path in PAGES:
        page.goto(server + path)
        assert page.evaluate("document.documentElement.lang") == "en"
        for selector in ("header", "nav", "main", "footer"):
            assert page.locator(selector).count() >= 1, (path, selector)
        assert page.locator("main").count() == 1
        unlabelled = page.evaluate(
            """() => [...document.querySelectorAll('input, select, textarea, button')]
                 .filter(el => el.type !== 'hidden')
                 .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label'))
                 .filter(el => !el.getAttribute('aria-labelledby'))
                 .filter(el => !(el.tagName === 'BUTTON' && el.textContent.trim()))
                 .map(el => el.outerHTML)"""
        )
        assert unlabelled == [], (path, unlabelled)
        levels = page.evaluate("[...document.querySelectorAll('h1,h2,h3,h4,h5,h6')].map(h => +h.tagName[1])")
        assert levels and levels[0] == 1 and levels.count(1) == 1, (path, levels)
        for a, b in itertools.pairwise(levels):
            assert b <= a + 1, (path, levels)
        svgs = page.evaluate("[...document.querySelectorAll('main svg')].map(s => !!s.querySelector('title'))")
        assert all(svgs), path
    ctx.close()


def test_usable_without_javascript(browser: Any, server: str, artifacts: Path) -> None:
    ctx = _context(browser, PHONE, java_script_enabled=False)
    page = ctx.new_page()
    page.goto(server + "/")
    page.get_by_label("Search models and hardware").fill("gpt-oss")
    page.get_by_role("button", name="Search").click()
    page.wait_for_url("**/search?q=gpt-oss")
    assert page.locator("#models-list li").count() >= 1
    assert page.locator("#models-list li", has_text="Qwen").count() == 0
    page.goto(server + urls.deploy_url(MODEL_ID, QUANT, TARGET_ID))
    assert page.locator("#cmd-deploy").inner_text().startswith("helmfile")
    assert not page.locator('button.copy[data-copy="#cmd-deploy"]').is_visible()
    assert page.locator("#values-text").inner_text().strip()
    shot(page, artifacts, "phone-deploy-nojs")
    ctx.close()


def test_client_side_filter(browser: Any, server: str) -> None:
    ctx = _context(browser, DESKTOP)
    page = ctx.new_page()
    page.goto(server + "/models")
    rows = page.locator("#models-table tbody tr")
    total = rows.count()
    page.get_by_label("Filter models").fill("gemma")
    visible = page.locator("#models-table tbody tr:not([hidden])")
    assert 0 < visible.count() < total
    assert all("Gemma" in t for t in visible.all_inner_texts())
    ctx.close()
