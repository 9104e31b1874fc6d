"""Classify log records into typed events: the catalogue of line shapes and message families.

Every record becomes an ``Event`` of one ``kind``. A record of a known family whose payload cannot be
parsed raises ``RecordError`` (the caller quarantines it); a record of an unknown family is kept as a
generic event (``app_message`` or ``unknown``) with its level, message and whatever payload parses.
A payload is kept as the JSON the warehouse stores (``inspect_literal.to_json``): object literals go
straight from log text to that JSON, and are decoded only where a family's fields must be checked.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson

from calo_assets.logs import _native
from calo_assets.logs.inspect_literal import (
    LiteralError,
    LiteralJson,
    find_literal_json,
    parse_json,
    to_json,
)
from calo_assets.money import MoneyError, check_money


class RecordError(ValueError):
    """A record of a known family whose content cannot be read; the message is the reason."""


@dataclass(slots=True)
class Event:
    """One typed log record. ``payload`` is compact JSON (fractional numbers as exact decimal text)."""

    kind: str
    level: str | None = None
    request_id: str | None = None
    message: str = ""
    payload: str | None = None
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
# Names of platform fields and their keys; other names are added as they are met (Lambda has a handful;
# the bound keeps odd input from growing the table).
_MAX_FIELD_NAMES = 64
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


class CommonColumns(NamedTuple):
    """The records typed by ``classify_common``, as columns; ``others`` lists the records left out."""

    kinds: list[str | None]
    levels: list[str | None]
    request_ids: list[str | None]
    messages: list[str | None]
    payloads: list[str | None]
    others: list[int]


def classify_common(bodies: list[str]) -> CommonColumns:
    """Type the records of the commonest shapes (``START``, ``END``, ``Processing message``,
    ``SubscriptionBalanceUpdated event published``: half of a day's records) in one compiled pass,
    exactly as ``classify`` types them. A record of any other shape has kind None here and its index in
    ``others``: ``classify`` is the rule, this a faster route to the same result (property-tested)."""
    return CommonColumns(*_native.classify_common(bodies))


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
            "runtime_error",
            "ERROR",
            message=runtime.group(1),
            payload=to_json({"error_type": error_type}),
        )
    head, literal = _try_literal(body)
    return Event("unknown", message=head, payload=_payload(literal), trailing=_trailing(literal))


def _classify_platform(name: str, body: str) -> Event:
    kind = name.lower()
    text = body[len(name) + 1 :]
    if kind in ("start", "end"):
        # START and END say nothing beyond their request id (a column) and the version (in the message).
        return Event(kind, request_id=_request_id(text), message=_first_line(body))
    fields = _platform_fields(text)
    request_id = fields.pop("request_id", None)
    return Event(kind, request_id=request_id, message=_first_line(body), payload=to_json(fields))


def _request_id(text: str) -> str | None:
    """The request id of a START or END line, read as ``_platform_fields`` reads it."""
    if text.startswith("RequestId: "):  # the usual shape: the first of the named values
        return _split_version(text[11:].partition("\t")[0].strip())[0]
    for key, value in _named_values(text):
        if key == "request_id":
            return _split_version(value)[0]
    return None


def _platform_fields(text: str) -> dict[str, str]:
    """``Key: value`` pairs separated by tabs; ``113.87 ms`` becomes ``duration_ms: "113.87"``."""
    fields: dict[str, str] = {}
    for key, value in _named_values(text):
        if key == "request_id":
            value, version = _split_version(value)
            if version:
                fields["version"] = version
        elif value.endswith((" ms", " MB")):
            number, _, unit = value.rpartition(" ")
            if _NUMBER.match(number):  # kept as its exact text, as stored JSON keeps every decimal
                key, value = f"{key}_{unit.lower()}", number
        fields[key] = value
    return fields


def _split_version(value: str) -> tuple[str, str]:
    """A START line's ``<request id> Version: $LATEST`` as the id and the version."""
    request_id, _, version = value.partition(" Version: ")
    return request_id, version.strip()


def _named_values(text: str) -> Iterator[tuple[str, str]]:
    """The tab-separated ``Name: value`` items of a platform line, names as snake_case keys."""
    for item in text.split("\t"):
        name, separator, value = item.partition(": ")
        if separator:
            key = _FIELD_NAMES.get(name)
            if key is None:
                key = name.strip().lower().replace(" ", "_")
                if len(_FIELD_NAMES) < _MAX_FIELD_NAMES:
                    _FIELD_NAMES[name] = key
            yield key, value.strip()


def _classify_app(message: str, level: str, request_id: str | None) -> Event:
    def event(
        kind: str, payload: str | None = None, trailing: str | None = None, text: str | None = None
    ) -> Event:
        return Event(
            kind, level, request_id, text if text is not None else message, payload, trailing
        )

    if message.startswith("Processing message"):
        message_id = message[len("Processing message") :].strip()
        return event("sqs_message", to_json({"message_id": message_id}))
    if message.startswith("Start syncing the balance"):
        head, literal = _literal(message, "transaction to sync")
        value = _decoded(literal)
        _check_transaction(value.get("transaction") if isinstance(value, dict) else None)
        return event("sync_started", literal.json, _trailing(literal), head)
    if message.startswith("SubscriptionBalanceUpdated event published"):
        return event("sync_published")
    if message.startswith("Subscription balance and payment balance are not in sync"):
        head, literal = _literal(message, "balance discrepancy")
        value = _decoded(literal)
        if not isinstance(value, dict) or not value.get("userId"):
            raise RecordError("balance discrepancy without userId")
        _check_money(value, ("subscriptionBalance", "paymentBalance"), "balance discrepancy")
        return event("balance_discrepancy", literal.json, _trailing(literal), head)
    # After the discrepancy: a discrepancy's object may hold any text, "already synced" too.
    if message.startswith("Skipping") or "already synced" in message:
        head, literal = _try_literal(message)
        detail = _payload(literal) or "null"
        return event(
            "sync_skipped",
            f'{{"reason":{to_json(head)},"detail":{detail}}}',
            _trailing(literal),
            head,
        )
    if message.startswith("Uncaught Exception"):
        head, _, rest = message.partition("\t")
        rest = rest.strip()
        payload = _json(rest) if rest.startswith("{") else to_json({"error": rest})
        return event("uncaught_exception", payload, text=head.strip())
    for prefix in ("transaction ", "record.body ", "record "):
        if message.startswith(prefix) and message[len(prefix) :].lstrip()[:1] in "{[":
            rest = message[len(prefix) :].lstrip()
            payload = _json(rest) if rest.startswith('{"') else _literal(rest, "SQS record")[1].json
            return event("sqs_body", payload, text=prefix.strip())
    if message.startswith("Sending slack notification"):
        head, literal = _try_literal(message)
        return event("slack_notification", _payload(literal), _trailing(literal), head)
    head, literal = _try_literal(message)
    # The substring test first: decoding every generic payload to look for it would cost time.
    if literal is not None and _NEGATIVE_BALANCE in literal.json:
        value = _decoded(literal)
        if isinstance(value, dict) and _NEGATIVE_BALANCE in str(value.get("message", "")):
            data = value.get("data")
            if not isinstance(data, dict) or not data.get("transactionId"):
                raise RecordError("negative-balance message without data.transactionId")
            return event(
                "negative_balance", literal.json, _trailing(literal), str(value["message"])
            )
    return event("app_message", _payload(literal), _trailing(literal), head)


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
        if value is None:  # absent, null or undefined
            if required:
                raise RecordError(f"{what}: missing {key}")
            continue
        try:
            check_money(value)
        except MoneyError as exc:
            raise RecordError(f"{what}: {key} {exc}") from None


def _literal(message: str, what: str) -> tuple[str, LiteralJson]:
    try:
        head, literal = find_literal_json(message)
    except LiteralError as exc:
        raise RecordError(f"{what}: {exc}") from None
    if literal is None:
        raise RecordError(f"{what}: no object in the message")
    return head, literal


def _try_literal(message: str) -> tuple[str, LiteralJson | None]:
    """Leading text and the object in the message; the whole text and None if none parses."""
    try:
        return find_literal_json(message)  # (message, None) when there is no object
    except LiteralError:
        return message, None


def _payload(literal: LiteralJson | None) -> str | None:
    return None if literal is None else literal.json


def _trailing(literal: LiteralJson | None) -> str | None:
    return (literal.trailing or None) if literal is not None else None


# Stored JSON holds no fractional numbers (they are text). orjson reads integers exactly up to 64 bits
# (compiled JSON has no longer ones); the standard decoder reads any JSON exactly.
_EXACT_JSON = json.JSONDecoder()


def _decoded(literal: LiteralJson) -> Any:
    """The stored JSON of a literal as Python values, for checking a family's fields."""
    return orjson.loads(literal.json) if literal.compiled else _EXACT_JSON.decode(literal.json)


def _json(text: str) -> str:
    """A JSON payload from the log, re-written in the stored form."""
    try:
        return to_json(parse_json(text))
    except LiteralError as exc:
        raise RecordError(str(exc)) from None


def _first_line(text: str) -> str:
    return text.split("\n", 1)[0]
