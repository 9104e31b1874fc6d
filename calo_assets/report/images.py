"""PNG charts, drawn by kaleido in one headless Chromium-family browser started as early as possible.

``ChartImages`` starts the browser in a background thread as soon as it is created, so the browser's
start-up (process, tab, plotly.js) overlaps with the queries and the workbook; ``render`` hands it
the figures and ``wait`` returns the files. All figures are drawn in one tab, one after the other.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import shutil
import threading
import time
from collections.abc import Mapping
from concurrent.futures import CancelledError, Future
from pathlib import Path
from typing import Any

import kaleido
import plotly.graph_objects as go

OPEN_TIMEOUT, OPEN_ATTEMPTS = 30.0, 2  # seconds for the browser to start (1 to 5 s here), tries
SLOW_START = 10.0  # a start-up slower than this is reported, even when it succeeded
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

    async def _return_kaleido_tab(self, tab: Any) -> None:  # kaleido's private _KaleidoTab
        await self.tabs_ready.put(tab)


class ChartImages:
    """A browser opened at once in a background thread, which draws the figures it is handed."""

    def __init__(
        self,
        browser: str,
        plotly_js: Path,
        width: int,
        height: int,
        open_timeout: float = OPEN_TIMEOUT,
    ) -> None:
        self._open_timeout = open_timeout  # seconds for one start-up attempt
        self._options = {"format": "png", "width": width, "height": height}
        self._kaleido = {
            "path": browser,
            "page_generator": kaleido.PageGenerator(plotly=str(plotly_js), mathjax=False),
        }
        self._began = time.perf_counter()
        self.opened_after = self.finished_after = math.nan  # seconds from creation, once known
        # What went wrong on the way without stopping the images (a start-up retried or slow), for
        # the report's metadata and the run's log; read it once ``wait`` has returned.
        self.warnings: list[str] = []
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
        browser = await self._open()
        try:
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
        finally:
            await browser.close()
        self.finished_after = time.perf_counter() - self._began
        return written

    async def _open(self) -> _OneTab:
        """The browser with its tab ready; a start-up that fails or hangs is abandoned and tried again.

        Kaleido waits for the page's load events without a time limit, and on an overloaded machine
        one of them went missing once here: without a limit the report would hang.
        """
        failure: BaseException | None = None
        for attempt in range(1, OPEN_ATTEMPTS + 1):
            began = time.perf_counter()
            browser = _OneTab(**self._kaleido)
            opening = asyncio.ensure_future(browser.open())
            await asyncio.wait({opening}, timeout=self._open_timeout)
            seconds = time.perf_counter() - began
            if opening.done() and opening.exception() is None:
                if attempt == 1 and seconds > SLOW_START:
                    self.warnings.append(
                        f"the chart browser took {seconds:.1f} s to start (usually 1 to 5 s)"
                    )
                return browser
            opening.cancel()
            failure = (
                opening.exception()
                if opening.done() and not opening.cancelled()
                else TimeoutError(f"not started in {self._open_timeout:g} s")
            )
            self.warnings.append(
                f"chart browser start-up attempt {attempt} of {OPEN_ATTEMPTS} failed after "
                f"{seconds:.1f} s: {type(failure).__name__}: {str(failure)[:200]}"
                + ("; trying again" if attempt < OPEN_ATTEMPTS else "")
            )
            # Closing a browser stopped half-way may fail too; what matters is the next try.
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(browser.close(), self._open_timeout)
        raise RuntimeError(
            f"the browser for the PNG charts did not start within {self._open_timeout:g} s, "
            f"{OPEN_ATTEMPTS} times (last: {failure!r})"
        ) from failure
