"""Which plotly.js the report loads (in the HTML page and in the browser that draws the PNGs).

plotly.js's basic partial bundle (vendored, a quarter of the full size) is used when it is the same
version as the plotly.js of the installed plotly package and holds every trace type the charts use;
otherwise the full bundle shipped with plotly.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import cache
from pathlib import Path

import plotly
from plotly.offline import get_plotlyjs_version

BASIC_BUNDLE = Path(__file__).parent / "vendor" / "plotly-basic.min.js"
BASIC_TRACE_TYPES = frozenset({"bar", "pie", "scatter"})
FULL_BUNDLE = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


@cache
def bundle_version(path: Path) -> str | None:
    """The version a plotly.js bundle states in its opening comment."""
    with path.open(encoding="utf-8") as handle:
        match = re.search(r"plotly\.js.*? v(\d+\.\d+\.\d+)", handle.read(300))
    return match.group(1) if match else None


def plotly_bundle(trace_types: Iterable[str]) -> Path:
    """The smaller bundle that draws ``trace_types`` with the installed plotly's plotly.js version."""
    if (
        set(trace_types) <= BASIC_TRACE_TYPES
        and bundle_version(BASIC_BUNDLE) == get_plotlyjs_version()
    ):
        return BASIC_BUNDLE
    return FULL_BUNDLE
