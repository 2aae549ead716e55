"""Browser tests: Debian's Chromium driven by Playwright, against the platform's real API/UI server.

Chromium comes from the system (``/usr/bin/chromium``; ``make install`` adds the Debian package where it can), never
from ``playwright install``.  Without it the tests are skipped with the reason; under CI every skip fails.
Screenshots go to ``ui-artifacts/`` (git-ignored; ``MLP_UI_ARTIFACTS`` moves it); with ``MLP_UI_DOCS_IMAGES=1``
the flow test also refreshes the guide's images under ``docs/images/``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.support.environment import REPO_ROOT, skip_missing

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Locator, Page

CHROMIUM = Path(os.environ.get("MLP_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1280, "height": 860}
ARTIFACTS = Path(os.environ.get("MLP_UI_ARTIFACTS", REPO_ROOT / "ui-artifacts"))
DOCS_IMAGES = REPO_ROOT / "docs" / "images"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Per module, not per session: Playwright's sync API holds an asyncio loop open in the main thread while it
    runs, and every later test calling ``asyncio.run`` (the embedded CLI does) would fail."""
    if not CHROMIUM.is_file():
        skip_missing(
            f"Chromium at {CHROMIUM}, not installed",
            "`make install` adds it where it can, or `sudo apt-get install chromium` (MLP_TEST_CHROMIUM: another path)",
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield launched
        finally:
            launched.close()


def new_page(browser: Browser, base_url: str) -> Page:
    """A fresh browser context (own cookies) whose console errors fail the test that reads ``page.errors``."""
    context = browser.new_context(base_url=base_url, viewport=VIEWPORT)  # type: ignore[arg-type]
    page = context.new_page()
    page.set_default_timeout(20_000)
    errors: list[str] = []
    # Script errors and CSP violations; a 4xx page the test provokes on purpose (a failed login) is no error here.
    page.on(
        "console",
        lambda message: (
            errors.append(message.text)
            if message.type == "error" and not message.text.startswith("Failed to load resource")
            else None
        ),
    )
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.errors = errors  # type: ignore[attr-defined]
    return page


def screenshot(page: Page, name: str, *, docs: bool = False, max_height: int = 4000) -> Path:
    """Keep a screenshot of the page's content as a test artifact; with MLP_UI_DOCS_IMAGES=1 the guide's copy too."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    box = page.locator("main").bounding_box()
    height = min(round(box["y"] + box["height"] + 8) if box else VIEWPORT["height"], max_height)
    page.screenshot(path=str(path), full_page=True, clip={"x": 0, "y": 0, "width": VIEWPORT["width"], "height": height})
    if docs and os.environ.get("MLP_UI_DOCS_IMAGES") == "1":
        _small_png(path, DOCS_IMAGES / f"ui-{name}.png")
    return path


def element_screenshot(locator: Locator, name: str, *, docs: bool = False) -> Path:
    """A screenshot of one part of a page (e.g. the model page's monitoring part), kept like ``screenshot``."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    locator.screenshot(path=str(path))
    if docs and os.environ.get("MLP_UI_DOCS_IMAGES") == "1":
        _small_png(path, DOCS_IMAGES / f"ui-{name}.png")
    return path


def _small_png(source: Path, target: Path) -> None:
    """A palette PNG at most 1100 px wide: a few tens of kilobytes in the repository instead of hundreds."""
    from PIL import Image

    target.parent.mkdir(parents=True, exist_ok=True)
    with Image.open(source) as opened:
        image = opened.convert("RGB")
        if image.width > 1100:
            image = image.resize((1100, round(image.height * 1100 / image.width)), Image.Resampling.LANCZOS)
        image.quantize(colors=128, method=Image.Quantize.MAXCOVERAGE).save(target, optimize=True)
