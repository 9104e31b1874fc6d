"""Alerts to a Slack-compatible webhook: new money out of sync, failed checks, failed runs.

What is said (the figures come from ``metrics``, like every figure a person sees):

- **new cases** (``cases_alert``): for a day, per currency, the cases first logged that day and the
  money they hold (revenue at risk, owed to users), when it is above the alert amount of the currency
  (``CALO_ALERT_MIN_AMOUNT``: ``SAR=1000,BHD=100``, one number for every currency, or both:
  ``500,SAR=1000``; unset: any amount above zero);
- **failed checks** (``checks_alert``): the checks of severity ERROR that failed in a run;
- **a failed run** (``run_failure_alert``): the job, the day(s), the steps that failed.

Each message carries the day, the figures and a link to the run (``CALO_DAGSTER_URL``) or the report.
Never personal data: no user or transaction ids, no text from the logs; counts, amounts, names of
checks, assets and steps only.

Sending (``send``) never raises and never hangs: each attempt is bounded (``timeout_seconds``, enforced
on the whole request, not per socket read), a failed attempt is retried ``attempts`` times in all with a
short pause (server errors, 429, timeouts and refused connections; not other 4xx answers), and the
result (``Delivery``) says what happened, for the caller to log as a warning. The webhook's URL is a
secret (it is the credential of a Slack webhook): it appears in no message, log or metadata.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path

import duckdb

from calo_assets import metrics
from calo_assets.money import format_money

PREFIX = "calo_assets"
_RETRY_PAUSE = 1.0  # seconds, doubled after each failed attempt


@dataclass(frozen=True)
class Thresholds:
    """The alert amount per currency (``default`` for the others)."""

    default: Decimal = Decimal(0)
    per_currency: tuple[tuple[str, Decimal], ...] = ()

    def of(self, currency: str) -> Decimal:
        return dict(self.per_currency).get(currency, self.default)


def parse_thresholds(text: str) -> Thresholds:
    """``CALO_ALERT_MIN_AMOUNT``: ``SAR=1000,BHD=100``, ``250``, ``250,SAR=1000`` or empty (zero)."""
    default, per_currency = Decimal(0), {}
    for item in (part.strip() for part in (text or "").split(",")):
        if not item:
            continue
        currency, sign, amount = item.rpartition("=")
        try:
            value = Decimal(amount.strip())
        except InvalidOperation:
            value = Decimal("NaN")
        if not value.is_finite() or value < 0 or (sign and not currency.strip()):
            raise ValueError(
                f"CALO_ALERT_MIN_AMOUNT={text!r}: {item!r} is not an amount (use SAR=1000,BHD=100, "
                "or one number for every currency)"
            )
        if sign:
            per_currency[currency.strip().upper()] = value
        else:
            default = value
    return Thresholds(default, tuple(sorted(per_currency.items())))


@dataclass(frozen=True)
class AlertSettings:
    """Where alerts go and when."""

    webhook_url: str = ""
    thresholds: Thresholds = field(default_factory=Thresholds)
    dagster_url: str = ""
    timeout_seconds: float = 10.0
    attempts: int = 3

    @property
    def enabled(self) -> bool:
        return bool(self.webhook_url.strip())

    def run_link(self, run_id: str) -> str:
        """The run's page in the Dagster UI, when ``CALO_DAGSTER_URL`` is set."""
        base = self.dagster_url.strip().rstrip("/")
        return f"{base}/runs/{run_id}" if base and run_id else ""


@dataclass(frozen=True)
class Delivery:
    """What sending a message did: delivered or not, after how many attempts, and why not."""

    delivered: bool
    attempts: int = 0
    status: int | None = None
    error: str = ""

    @property
    def text(self) -> str:
        if self.delivered:
            return f"delivered (HTTP {self.status}, attempt {self.attempts})"
        if not self.attempts:
            return self.error or "not sent"
        return f"not delivered after {self.attempts} attempt(s): {self.error}"


def send(
    settings: AlertSettings, text: str, sleep: Callable[[float], None] = time.sleep
) -> Delivery:
    """Post ``{"text": text}`` to the webhook; never raises, and returns within about
    ``attempts * (timeout_seconds + 1) + pauses`` seconds."""
    url = settings.webhook_url.strip()
    if not url:
        return Delivery(False, error="no webhook configured (CALO_ALERT_WEBHOOK_URL)")
    if not url.lower().startswith(("https://", "http://")):
        return Delivery(False, error="CALO_ALERT_WEBHOOK_URL is not an http(s) URL: not sent")
    body = json.dumps({"text": text}).encode()
    pause = _RETRY_PAUSE
    status, error = None, ""
    attempts = max(1, settings.attempts)
    for attempt in range(1, attempts + 1):
        status, error = _post(url, body, settings.timeout_seconds)
        if status is not None and 200 <= status < 300:
            return Delivery(True, attempt, status)
        retry = status is None or status == 429 or status >= 500
        if not retry or attempt == attempts:
            return Delivery(False, attempt, status, error.replace(url, "<webhook>"))
        sleep(pause)
        pause *= 2
    return Delivery(False, attempts, status, error)  # pragma: no cover - the loop returns


def _post(url: str, body: bytes, timeout: float) -> tuple[int | None, str]:
    """One POST, abandoned after ``timeout`` seconds whatever the server does (a server that
    accepts and never answers, or answers a byte at a time)."""
    outcome: dict[str, object] = {}

    def attempt() -> None:
        request = urllib.request.Request(
            url,
            data=body,
            headers={"Content-Type": "application/json", "User-Agent": PREFIX},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                response.read(4096)
                outcome["status"] = response.status
        except urllib.error.HTTPError as exc:
            outcome["status"] = exc.code
            outcome["error"] = f"HTTP {exc.code}"
        except urllib.error.URLError as exc:
            outcome["error"] = f"cannot reach the webhook ({exc.reason})"
        except TimeoutError:
            outcome["error"] = f"no answer within {timeout:g} s"
        except Exception as exc:  # anything else is a failed attempt too, never an exception
            outcome["error"] = f"{type(exc).__name__}: {exc}"

    worker = threading.Thread(target=attempt, name="calo-alert", daemon=True)
    worker.start()
    worker.join(timeout + 1)
    if worker.is_alive():
        return None, f"no answer within {timeout:g} s"
    status = outcome.get("status")
    return (status if isinstance(status, int) else None), str(outcome.get("error", ""))


# -- what is said ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NewCases:
    """Cases first logged on a day, in one currency, and the money they hold."""

    currency: str
    cases: int
    revenue_at_risk: Decimal
    owed_to_users: Decimal
    threshold: Decimal

    @property
    def amount(self) -> Decimal:
        return self.revenue_at_risk + self.owed_to_users

    @property
    def above(self) -> bool:
        return self.cases > 0 and self.amount > self.threshold


def new_cases(
    connection: duckdb.DuckDBPyConnection, day: date, thresholds: Thresholds
) -> list[NewCases]:
    """Per currency, the cases first logged on ``day`` (``metrics.alert_figures``)."""
    figures = metrics.alert_figures(connection, day, day)
    return [
        NewCases(
            currency,
            int(metrics.find(figures, "cases_opened", currency).value),
            Decimal(metrics.find(figures, "revenue_at_risk_of_cases_opened", currency).value),
            Decimal(metrics.find(figures, "owed_to_users_of_cases_opened", currency).value),
            thresholds.of(currency),
        )
        for currency in metrics.currencies(figures)
    ]


def cases_alert(
    cases_by_day: Mapping[str, Iterable[NewCases]], link: str = "", max_days: int = 10
) -> str | None:
    """The message for the new cases above their alert amount on the run's days, or None. A run of
    several days (a backfill) gives one message, at most ``max_days`` days listed."""
    above = {
        day: found
        for day, cases in sorted(cases_by_day.items())
        if (found := [case for case in cases if case.above])
    }
    if not above:
        return None
    days = list(above)
    if len(cases_by_day) == 1:
        lines = [f"{PREFIX}: new balance discrepancies on {days[0]} above the alert amount"]
    else:
        lines = [
            f"{PREFIX}: new balance discrepancies above the alert amount on {len(days)} of the "
            f"run's {len(cases_by_day)} days ({min(cases_by_day)} to {max(cases_by_day)})"
        ]
    for day in days[:max_days]:
        for case in above[day]:
            lines.append(
                ("• " if len(cases_by_day) == 1 else f"• {day} ")
                + f"{metrics.currency_title(case.currency)}: {case.cases:,} case"
                f"{'s' if case.cases != 1 else ''} opened, revenue at risk "
                f"{_money(case.revenue_at_risk, case.currency)}, owed to users "
                f"{_money(case.owed_to_users, case.currency)} (alert above "
                f"{_money(case.threshold, case.currency)})"
            )
    if len(days) > max_days:
        lines.append(f"(and {len(days) - max_days} more day(s): see the report)")
    return "\n".join([*lines, *_link_lines(link)])


def checks_alert(
    job: str, days: str, failed: Iterable[tuple[str, str]], warnings: int = 0, link: str = ""
) -> str | None:
    """The message for the checks of severity ERROR that failed (``(asset, check)`` pairs)."""
    failed = sorted(set(failed))
    if not failed:
        return None
    lines = [f"{PREFIX}: {len(failed)} data check(s) failed in run of {job} ({days})"]
    lines += [f"• {check} on {asset}" for asset, check in failed]
    if warnings:
        lines.append(f"(and {warnings} check(s) of severity WARN did not pass)")
    return "\n".join([*lines, *_link_lines(link)])


def run_failure_alert(job: str, days: str, steps: Iterable[str], link: str = "") -> str:
    """The message for a failed run (``steps``: the failed steps, already free of personal data)."""
    lines = [f"{PREFIX}: run of {job} failed ({days})"]
    lines += [f"• {step}" for step in steps]
    return "\n".join([*lines, *_link_lines(link)])


def report_link(report_dir: Path | str) -> str:
    from calo_assets.report.publish import WORKBOOK

    return str(Path(report_dir) / WORKBOOK)


def days_text(tags: Mapping[str, str]) -> str:
    """The day(s) of a run from its tags."""
    if tags.get("dagster/partition"):
        return tags["dagster/partition"]
    start = tags.get("dagster/asset_partition_range_start")
    end = tags.get("dagster/asset_partition_range_end")
    if start and end:
        return start if start == end else f"{start} to {end}"
    return "no partition"


def _link_lines(link: str) -> list[str]:
    if not link:
        return []
    return [f"Run: {link}" if "://" in link else f"Report: {link}"]


def _money(value: Decimal, currency: str) -> str:
    return format_money(value, None if currency == metrics.UNKNOWN_CURRENCY else currency)
