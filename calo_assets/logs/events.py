"""Classify log records into typed events: the catalogue of line shapes and message families.

Every record becomes an ``Event`` of one ``kind``. A record of a known family whose payload cannot be
parsed raises ``RecordError`` (the caller quarantines it); a record of an unknown family is kept as a
generic event (``app_message`` or ``unknown``) with its level, message and whatever payload parses.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from calo_assets.logs.inspect_literal import UNDEFINED, LiteralError, find_literal, parse_json
from calo_assets.money import MoneyError, to_money


class RecordError(ValueError):
    """A record of a known family whose content cannot be read; the message is the reason."""


@dataclass(slots=True)
class Event:
    """One typed log record. ``payload`` holds parsed values (``Decimal`` for fractional numbers)."""

    kind: str
    level: str | None = None
    request_id: str | None = None
    message: str = ""
    payload: Any = None
    trailing: str | None = None


# Kinds, grouped by where they come from.
PLATFORM_KINDS = (
    "init_start",
    "start",
    "end",
    "report",
    "init_report",
    "xray",
    "runtime_error",
    "metric",
)
APP_KINDS = (
    "sqs_message",
    "sync_started",
    "sync_published",
    "sync_skipped",
    "balance_discrepancy",
    "negative_balance",
    "sqs_body",
    "slack_notification",
    "uncaught_exception",
    "app_message",
)
ALL_KINDS = (*PLATFORM_KINDS, *APP_KINDS, "unknown")

_APP_LINE = re.compile(r"(\d{4}-\d\d-\d\dT[\d:.]+Z)\t([^\t\n]+)\t([A-Z]+)\t(.*)", re.S)
_PLATFORM = re.compile(r"(INIT_START|START|END|REPORT|INIT_REPORT|XRAY) ")
_FIELD_NAMES = {
    "RequestId": "request_id",
    "Duration": "duration",
    "Billed Duration": "billed_duration",
}
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?$")
_RUNTIME_ERROR = re.compile(
    r"(Unknown application error occurred|Task timed out after [\d.]+ seconds)(.*)", re.S
)
_NEGATIVE_BALANCE = "negative balance"


def classify(body: str) -> Event:
    """Type one record (the text after its export timestamp)."""
    app = _APP_LINE.match(body)
    if app is not None:
        _, request_id, level, message = app.groups()
        return _classify_app(message, level, None if request_id == "undefined" else request_id)
    platform = _PLATFORM.match(body)
    if platform is not None:
        return _classify_platform(platform.group(1), body)
    if body.startswith('{"_aws"'):
        return Event("metric", message=_first_line(body), payload=_json(body))
    runtime = _RUNTIME_ERROR.match(body)
    if runtime is not None:
        error_type = runtime.group(2).strip() or None
        return Event(
            "runtime_error", "ERROR", message=runtime.group(1), payload={"error_type": error_type}
        )
    head, value, trailing = _try_literal(body)
    return Event("unknown", message=head, payload=value, trailing=trailing)


def _classify_platform(name: str, body: str) -> Event:
    kind = name.lower()
    text = body[len(name) + 1 :]
    if kind in ("start", "end"):
        # START and END say nothing beyond their request id (a column) and the version (in the message).
        return Event(kind, request_id=_request_id(text), message=_first_line(body))
    fields = _platform_fields(text)
    request_id = fields.pop("request_id", None)
    return Event(kind, request_id=request_id, message=_first_line(body), payload=fields)


def _request_id(text: str) -> str | None:
    """The request id of a START or END line, read as ``_platform_fields`` reads it."""
    for key, value in _named_values(text):
        if key == "request_id":
            return value.partition(" Version: ")[0]
    return None


def _platform_fields(text: str) -> dict[str, Any]:
    """``Key: value`` pairs separated by tabs; ``113.87 ms`` becomes ``duration_ms: Decimal``."""
    fields: dict[str, Any] = {}
    for key, value in _named_values(text):
        if key == "request_id":
            value, _, version = value.partition(" Version: ")
            if version:
                fields["version"] = version.strip()
        elif value.endswith((" ms", " MB")):
            number, _, unit = value.rpartition(" ")
            if _NUMBER.match(number):
                key, value = f"{key}_{unit.lower()}", Decimal(number)
        fields[key] = value
    return fields


def _named_values(text: str) -> Iterator[tuple[str, str]]:
    """The tab-separated ``Name: value`` items of a platform line, names as snake_case keys."""
    for item in text.split("\t"):
        name, separator, value = item.partition(": ")
        if separator:
            key = _FIELD_NAMES.get(name) or name.strip().lower().replace(" ", "_")
            yield key, value.strip()


def _classify_app(message: str, level: str, request_id: str | None) -> Event:
    def event(
        kind: str, payload: Any = None, trailing: str | None = None, text: str | None = None
    ) -> Event:
        return Event(
            kind, level, request_id, text if text is not None else message, payload, trailing
        )

    if message.startswith("Processing message"):
        return event("sqs_message", {"message_id": message[len("Processing message") :].strip()})
    if message.startswith("Start syncing the balance"):
        head, literal, trailing = _literal(message, "transaction to sync")
        transaction = literal.get("transaction") if isinstance(literal, dict) else None
        _check_transaction(transaction)
        return event("sync_started", literal, trailing, head)
    if message.startswith("SubscriptionBalanceUpdated event published"):
        return event("sync_published")
    if message.startswith("Skipping") or "already synced" in message:
        head, value, trailing = _try_literal(message)
        return event("sync_skipped", {"reason": head, "detail": value}, trailing, head)
    if message.startswith("Subscription balance and payment balance are not in sync"):
        head, literal, trailing = _literal(message, "balance discrepancy")
        if not isinstance(literal, dict) or not literal.get("userId"):
            raise RecordError("balance discrepancy without userId")
        _check_money(literal, ("subscriptionBalance", "paymentBalance"), "balance discrepancy")
        return event("balance_discrepancy", literal, trailing, head)
    if message.startswith("Uncaught Exception"):
        head, _, rest = message.partition("\t")
        rest = rest.strip()
        payload = _json(rest) if rest.startswith("{") else {"error": rest}
        return event("uncaught_exception", payload, text=head.strip())
    for prefix in ("transaction ", "record.body ", "record "):
        if message.startswith(prefix) and message[len(prefix) :].lstrip()[:1] in "{[":
            rest = message[len(prefix) :].lstrip()
            payload = _json(rest) if rest.startswith('{"') else _literal(rest, "SQS record")[1]
            return event("sqs_body", payload, text=prefix.strip())
    if message.startswith("Sending slack notification"):
        head, value, trailing = _try_literal(message)
        return event("slack_notification", value, trailing, head)
    head, payload, trailing = _try_literal(message)
    if isinstance(payload, dict) and _NEGATIVE_BALANCE in str(payload.get("message", "")):
        data = payload.get("data")
        if not isinstance(data, dict) or not data.get("transactionId"):
            raise RecordError("negative-balance message without data.transactionId")
        return event("negative_balance", payload, trailing, str(payload["message"]))
    return event("app_message", payload, trailing, head)


def _check_transaction(transaction: Any) -> None:
    if not isinstance(transaction, dict):
        raise RecordError("transaction to sync: no transaction object")
    for key in ("id", "userId"):
        if not transaction.get(key) or not isinstance(transaction[key], str):
            raise RecordError(f"transaction to sync: missing {key}")
    _check_money(transaction, REQUIRED_MONEY, f"transaction {transaction['id']}")
    _check_money(transaction, OPTIONAL_MONEY, f"transaction {transaction['id']}", required=False)


REQUIRED_MONEY = ("amount", "oldBalance", "newBalance")
OPTIONAL_MONEY = ("vat", "paymentBalance")


def _check_money(values: dict, keys: tuple[str, ...], what: str, required: bool = True) -> None:
    for key in keys:
        value = values.get(key)
        if value is None or value is UNDEFINED:
            if required:
                raise RecordError(f"{what}: missing {key}")
            continue
        try:
            to_money(value)
        except MoneyError as exc:
            raise RecordError(f"{what}: {key} {exc}") from None


def _literal(message: str, what: str) -> tuple[str, Any, str | None]:
    try:
        head, literal = find_literal(message)
    except LiteralError as exc:
        raise RecordError(f"{what}: {exc}") from None
    if literal is None:
        raise RecordError(f"{what}: no object in the message")
    return head, literal.value, literal.trailing or None


def _try_literal(message: str) -> tuple[str, Any, str | None]:
    """Leading text, value and trailing text of an object in the message; the whole text if none parses."""
    try:
        head, literal = find_literal(message)
    except LiteralError:
        return message, None, None
    if literal is None:
        return message, None, None
    return head, literal.value, literal.trailing or None


def _json(text: str) -> Any:
    try:
        return parse_json(text)
    except LiteralError as exc:
        raise RecordError(str(exc)) from None


def _first_line(text: str) -> str:
    return text.split("\n", 1)[0]
