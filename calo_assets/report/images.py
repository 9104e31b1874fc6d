"""PNG charts, drawn by kaleido in one headless Chromium-family browser started as early as possible.

``ChartImages`` starts the browser in a background thread as soon as it is created, so the browser's
start-up (process, tab, plotly.js) overlaps with the queries and the workbook; ``render`` hands it
the figures and ``wait`` returns the files. All figures are drawn in one tab, one after the other.
"""

from __future__ import annotations

import asyncio
import math
import os
import shutil
import threading
import time
from collections.abc import Mapping
from concurrent.futures import CancelledError, Future
from pathlib import Path

import kaleido
import plotly.graph_objects as go

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")


def find_browser() -> str | None:
    """A Chromium-family browser for kaleido: ``BROWSER_PATH`` or one on the PATH."""
    configured = os.environ.get("BROWSER_PATH")
    if configured:
        return configured if Path(configured).exists() else None
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


class _OneTab(kaleido.Kaleido):
    """Kaleido without its page reload between two figures.

    Kaleido reloads its tab (and so re-reads plotly.js, ~0.3 s) after every figure; the report's
    figures come out byte for byte the same without it (checked in the tests), so the tab is simply
    handed back.
    """

    async def _return_kaleido_tab(self, tab) -> None:
        await self.tabs_ready.put(tab)


class ChartImages:
    """A browser opened at once in a background thread, which draws the figures it is handed."""

    def __init__(self, browser: str, plotly_js: Path, width: int, height: int) -> None:
        self._options = {"format": "png", "width": width, "height": height}
        self._kaleido = {
            "path": browser,
            "page_generator": kaleido.PageGenerator(plotly=str(plotly_js), mathjax=False),
        }
        self._began = time.perf_counter()
        self.opened_after = self.finished_after = math.nan  # seconds from creation, once known
        self._work: Future[dict[Path, go.Figure]] = Future()
        self._done: Future[list[Path]] = Future()
        self._thread = threading.Thread(target=self._run, name="chart-images", daemon=True)
        self._thread.start()

    def render(self, figures: Mapping[Path, go.Figure]) -> None:
        """Draw ``figures`` (by PNG path) once the browser is ready; returns at once."""
        self._work.set_result(dict(figures))

    def wait(self) -> list[Path]:
        """The PNG files, once written (raises what went wrong in the browser)."""
        try:
            return self._done.result()
        finally:
            self._thread.join()

    def cancel(self) -> None:
        """Close the browser without drawing anything (when the report failed before ``render``)."""
        if not self._work.done():
            self._work.cancel()
        self._thread.join()

    def _run(self) -> None:
        try:
            self._done.set_result(asyncio.run(self._draw()))
        except (CancelledError, asyncio.CancelledError):
            self._done.cancel()
        except BaseException as exc:  # handed to the caller of wait()
            self._done.set_exception(exc)

    async def _draw(self) -> list[Path]:
        async with _OneTab(**self._kaleido) as browser:
            self.opened_after = time.perf_counter() - self._began
            figures = await asyncio.wrap_future(self._work)
            written = []
            for path, figure in figures.items():
                image = await browser.calc_fig(figure, opts=self._options)
                path.parent.mkdir(parents=True, exist_ok=True)
                temporary = path.with_name(f".{path.name}.tmp")
                temporary.write_bytes(image)
                temporary.replace(path)
                written.append(path)
        self.finished_after = time.perf_counter() - self._began
        return written
