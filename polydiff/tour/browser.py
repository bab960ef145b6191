"""Headless Chromium (through Selenium) for checking and photographing ``report.html``.

Needs Debian's ``chromium`` and ``chromium-driver`` and pip's ``selenium`` (the ``dev``
extra); :func:`chromium_missing` says what is absent, so that tests can skip with a reason.
WebGL runs on SwiftShader, Chromium's CPU renderer, so no GPU is needed.
"""

from __future__ import annotations

import shutil
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
DRIVERS = ("chromedriver",)
FLAGS = ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--use-angle=swiftshader",
         "--enable-unsafe-swiftshader", "--allow-file-access-from-files", "--hide-scrollbars")


def _which(names: tuple[str, ...]) -> str | None:
    return next((p for p in map(shutil.which, names) if p), None)


def chromium_missing() -> str | None:
    """Why the browser cannot run here (None when it can)."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[dev]')"
    if _which(BROWSERS) is None:
        return "Chromium is not installed (apt-get install chromium chromium-driver)"
    if _which(DRIVERS) is None:
        return "chromedriver is not installed (apt-get install chromium-driver)"
    return None


@contextmanager
def chromium(width: int = 1200, height: int = 900):
    """A headless Chromium WebDriver with the browser console log enabled."""
    from selenium import webdriver

    missing = chromium_missing()
    if missing:
        raise RuntimeError(missing)
    options = webdriver.ChromeOptions()
    options.binary_location = _which(BROWSERS)
    for flag in (*FLAGS, f"--window-size={width},{height}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=_which(DRIVERS)),
                              options=options)
    try:
        yield driver
    finally:
        driver.quit()


class PageCheck(NamedTuple):
    """What a page showed: every image's natural size, every viewer's data attributes."""

    images: list[dict[str, Any]]   # {"src", "width", "height", "complete"}
    viewers: list[dict[str, Any]]  # {"id", "state", "vertices", "triangles", "points", ...}
    console: list[str]


IMAGES_JS = """return Array.from(document.images).map(function (i) {
  return {src: i.getAttribute('src'), width: i.naturalWidth, height: i.naturalHeight,
          complete: i.complete}; });"""
VIEWERS_JS = """return Array.from(document.querySelectorAll('canvas[data-glb]')).map(
  function (c) { return Object.assign({id: c.id}, c.dataset); });"""


def check_page(driver, page: Path, timeout: float = 30.0) -> PageCheck:
    """Open ``page`` and wait until its images and viewers have finished (or ``timeout``)."""
    driver.get(Path(page).resolve().as_uri())
    deadline = time.monotonic() + timeout
    while True:
        images = driver.execute_script(IMAGES_JS)
        viewers = driver.execute_script(VIEWERS_JS)
        done = all(i["complete"] for i in images) and all(v.get("state") for v in viewers)
        if done or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    console = [entry["message"] for entry in driver.get_log("browser")]
    return PageCheck(images, viewers, console)


def screenshot(page: Path, png: Path, width: int = 1200) -> Path:
    """A PNG of the whole of ``page`` (its full height), once everything on it has loaded."""
    with chromium(width, 900) as driver:
        check_page(driver, page)
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(width, min(int(height) + 40, 16000))
        time.sleep(0.5)
        png.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(png))
    return png
