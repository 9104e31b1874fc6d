"""Build a day's sync tables from its typed events, invocation by invocation.

Inside one invocation the service handles SQS messages one after the other: ``Processing message``
opens a message, ``Start syncing the balance`` names the transaction being processed, and what is
logged after it (until the next message) tells what happened to it:

- ``SubscriptionBalanceUpdated event published``: applied;
- a ``Skipping ...`` message: skipped;
- the negative-balance message naming the transaction: rejected (its new balance was never applied);
- an error other than a balance discrepancy, or an invocation that crashed or timed out: failed;
- nothing: unknown.

A balance discrepancy belongs to the transaction being processed when it was logged and takes that
transaction's currency (or, without one, the currency of the user's other transactions that day).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

import pyarrow as pa

from calo_assets.ledger.rules import direction, gap
from calo_assets.money import to_money
from calo_assets.tables.schema import to_table

APPLIED, SKIPPED, REJECTED, FAILED, UNKNOWN = "applied", "skipped", "rejected", "failed", "unknown"
OUTCOMES = (APPLIED, SKIPPED, REJECTED, FAILED, UNKNOWN)
SYNC_TABLES = (
    "invocations",
    "transactions",
    "balance_discrepancies",
    "negative_balance_rejections",
    "processing_errors",
)
_ERROR_KINDS = frozenset({"uncaught_exception", "runtime_error"})


def build_sync_tables(events: Iterable[Mapping[str, Any]]) -> dict[str, pa.Table]:
    """The five sync tables of one day from that day's events (in stream and line order)."""
    builder = _DayBuilder()
    by_request: dict[str | None, list[Mapping[str, Any]]] = defaultdict(list)
    for event in events:
        by_request[event["request_id"]].append(event)
    for request_id, sequence in by_request.items():
        if request_id is not None:
            builder.invocation(request_id, sequence)
        else:
            builder.orphans(sequence)
    return builder.tables()


def _payload(event: Mapping[str, Any]) -> Any:
    text = event["payload"]
    return json.loads(text) if text else None


def _money(value: Any) -> Decimal | None:
    return to_money(value) if value not in (None, "") else None


def _where(event: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "day": event["day"],
        "occurred_at": event["occurred_at"],
        "request_id": event["request_id"],
        "stream": event["stream"],
        "line": event["line"],
    }


class _DayBuilder:
    def __init__(self) -> None:
        self.invocations: list[dict[str, Any]] = []
        self.transactions: dict[str, dict[str, Any]] = {}
        self.discrepancies: list[dict[str, Any]] = []
        self.rejections: list[dict[str, Any]] = []
        self.errors: list[dict[str, Any]] = []

    def invocation(self, request_id: str, sequence: list[Mapping[str, Any]]) -> None:
        row: dict[str, Any] = {
            "request_id": request_id,
            "day": sequence[0]["day"],
            "stream": sequence[0]["stream"],
            "cold_start": False,
            "init_starts": 0,
            "status": None,
            "error_type": None,
            "transactions": 0,
            "errors": 0,
        }
        ended = crashed = timed_out = False
        current: dict[str, Any] | None = None
        message_id: str | None = None
        started: list[dict[str, Any]] = []
        for event in sequence:
            kind = event["kind"]
            if kind == "start":
                row["started_at"] = event["occurred_at"]
            elif kind in ("end", "report"):
                ended = True
                row["ended_at"] = event["occurred_at"]
                if kind == "report":
                    self._report(row, _payload(event))
            elif kind == "init_start":
                row["cold_start"] = True
                row["init_starts"] += 1
                row["runtime_version"] = (_payload(event) or {}).get("runtime_version")
            elif kind == "init_report":
                fields = _payload(event) or {}
                if fields.get("status", "").lower() == "error":
                    crashed = True
                    row["error_type"] = row["error_type"] or fields.get("error_type")
            elif kind == "sqs_message":
                current, message_id = None, (_payload(event) or {}).get("message_id")
            elif kind == "sync_started":
                current = self._transaction(event, message_id)
                if current is not None:
                    started.append(current)
                    row["transactions"] += 1
            elif kind == "sync_published":
                self._settle(current, APPLIED)
            elif kind == "sync_skipped":
                self._settle(current, SKIPPED, event["message"])
            elif kind == "negative_balance":
                self._rejection(event, current)
            elif kind == "balance_discrepancy":
                self._discrepancy(event, current)
            elif kind in _ERROR_KINDS or (event["level"] == "ERROR" and kind == "app_message"):
                row["errors"] += 1
                error = self._error(event, current)
                timed_out = timed_out or event["message"].startswith("Task timed out")
                if kind == "runtime_error" or (kind == "uncaught_exception" and current is None):
                    crashed = True
                    row["error_type"] = row["error_type"] or error["error_type"]
                self._settle(current, FAILED, error["message"])
        report_status = row.pop("report_status", None)
        if timed_out or report_status == "timeout":
            row["status"] = "timeout"
        elif crashed or report_status == "error":
            row["status"] = "error"
        elif not ended:
            row["status"] = "incomplete"
        else:
            row["status"] = "success"
        for transaction in started:
            if transaction["outcome"] is None and row["status"] != "success":
                transaction["outcome"] = FAILED
                transaction["outcome_detail"] = f"invocation {row['status']}"
        if "started_at" in row:
            self.invocations.append(row)

    def orphans(self, sequence: list[Mapping[str, Any]]) -> None:
        """Events outside any invocation of the day still count: errors and rejections are kept."""
        for event in sequence:
            if event["kind"] == "negative_balance":
                self._rejection(event, None)
            elif event["kind"] in _ERROR_KINDS or event["level"] == "ERROR":
                self._error(event, None)

    @staticmethod
    def _report(row: dict[str, Any], fields: dict[str, Any]) -> None:
        for key in ("duration_ms", "billed_duration_ms", "init_duration_ms"):
            if fields.get(key) is not None:
                row[key] = float(fields[key])
        for key in ("memory_size_mb", "max_memory_used_mb"):
            if fields.get(key) is not None:
                row[key] = int(Decimal(fields[key]))
        if fields.get("init_duration_ms") is not None:
            row["cold_start"] = True
        if fields.get("status"):
            row["report_status"] = str(fields["status"]).lower()
            row["error_type"] = row["error_type"] or fields.get("error_type")

    def _transaction(
        self, event: Mapping[str, Any], message_id: str | None
    ) -> dict[str, Any] | None:
        logged = (_payload(event) or {}).get("transaction") or {}
        transaction_id = logged["id"]
        known = self.transactions.get(transaction_id)
        if known is not None:  # logged again (SQS redelivery): one transaction, counted
            known["times_logged"] += 1
            return known
        old_balance = _money(logged.get("oldBalance"))
        new_balance = _money(logged.get("newBalance"))
        kind, inferred = direction(logged.get("type"), old_balance, new_balance)
        metadata = logged.get("metadata")
        row = {
            "transaction_id": transaction_id,
            **_where(event),
            "message_id": message_id,
            "user_id": logged.get("userId"),
            "type": kind,
            "type_inferred": inferred,
            "source": logged.get("source"),
            "action": logged.get("action"),
            "currency": logged.get("currency"),
            "amount": _money(logged.get("amount")),
            "vat": _money(logged.get("vat")),
            "old_balance": old_balance,
            "new_balance": new_balance,
            "payment_balance": _money(logged.get("paymentBalance")),
            "update_payment_balance": logged.get("updatePaymentBalance")
            if isinstance(logged.get("updatePaymentBalance"), bool)
            else None,
            "metadata": metadata
            if isinstance(metadata, str) or metadata is None
            else json.dumps(metadata),
            "outcome": None,
            "outcome_detail": None,
            "times_logged": 1,
        }
        self.transactions[transaction_id] = row
        return row

    @staticmethod
    def _settle(
        transaction: dict[str, Any] | None, outcome: str, detail: str | None = None
    ) -> None:
        if transaction is not None and transaction["outcome"] in (None, UNKNOWN):
            transaction["outcome"] = outcome
            transaction["outcome_detail"] = detail

    def _rejection(self, event: Mapping[str, Any], current: dict[str, Any] | None) -> None:
        data = (_payload(event) or {}).get("data") or {}
        transaction_id = data.get("transactionId")
        transaction = self.transactions.get(transaction_id) or current
        if transaction is not None and transaction["transaction_id"] == transaction_id:
            transaction["outcome"] = REJECTED
            transaction["outcome_detail"] = event["message"]
        else:
            transaction = None
        self.rejections.append(
            {
                **_where(event),
                "user_id": data.get("userId"),
                "transaction_id": transaction_id,
                "currency": transaction["currency"] if transaction else None,
                "current_balance": _money(data.get("currentBalance")),
                "amount": transaction["amount"] if transaction else None,
                "attempted_new_balance": transaction["new_balance"] if transaction else None,
                "action": transaction["action"] if transaction else None,
            }
        )

    def _discrepancy(self, event: Mapping[str, Any], current: dict[str, Any] | None) -> None:
        logged = _payload(event) or {}
        subscription = _money(logged.get("subscriptionBalance"))
        payment = _money(logged.get("paymentBalance"))
        user_id = logged.get("userId")
        linked = current if current is not None and current["user_id"] == user_id else None
        self.discrepancies.append(
            {
                **_where(event),
                "user_id": user_id,
                "currency": linked["currency"] if linked else None,
                "subscription_balance": subscription,
                "payment_balance": payment,
                "gap": gap(subscription, payment),
                "transaction_id": linked["transaction_id"] if linked else None,
                "action": linked["action"] if linked else None,
            }
        )

    def _error(self, event: Mapping[str, Any], current: dict[str, Any] | None) -> dict[str, Any]:
        payload = _payload(event)
        error_type = None
        if isinstance(payload, dict):
            error_type = (
                payload.get("errorType") or payload.get("error_type") or payload.get("code")
            )
            message = payload.get("errorMessage") or payload.get("message") or event["message"]
        else:
            message = event["message"]
        row = {
            **_where(event),
            "kind": event["kind"],
            "error_type": error_type or event["kind"],
            "message": str(message),
            "user_id": current["user_id"] if current else None,
            "transaction_id": current["transaction_id"] if current else None,
            "action": current["action"] if current else None,
            "detail": event["payload"],
        }
        self.errors.append(row)
        return row

    def tables(self) -> dict[str, pa.Table]:
        user_currency: dict[str, str] = {}
        for transaction in self.transactions.values():
            if transaction["outcome"] is None:
                transaction["outcome"] = UNKNOWN
            if transaction["currency"]:
                user_currency[transaction["user_id"]] = transaction["currency"]
        for row in (*self.discrepancies, *self.rejections):
            if row["currency"] is None:
                row["currency"] = user_currency.get(row["user_id"])
        return {
            "invocations": to_table("invocations", self.invocations),
            "transactions": to_table("transactions", self.transactions.values()),
            "balance_discrepancies": to_table("balance_discrepancies", self.discrepancies),
            "negative_balance_rejections": to_table("negative_balance_rejections", self.rejections),
            "processing_errors": to_table("processing_errors", self.errors),
        }
