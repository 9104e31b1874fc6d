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
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from calo_assets.ledger.rules import direction, gap
from calo_assets.money import to_money
from calo_assets.tables.schema import to_table, with_corrections

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
    return build_sync_tables_in_parts([events])


def build_sync_tables_in_parts(
    parts: Iterable[Iterable[Mapping[str, Any]]], shared_ids: frozenset[str] | None = None
) -> dict[str, pa.Table]:
    """The five sync tables of one day from its events in parts, whole (see ``SyncDay``)."""
    day = SyncDay(shared_ids)
    pieces: dict[str, list[pa.Table]] = defaultdict(list)
    for events in parts:
        for name, piece in day.add(events).items():
            pieces[name].append(piece)
    corrections = day.corrections()
    return {
        name: with_corrections(
            pa.concat_tables([*pieces[name], to_table(name, [])]), corrections.get(name, {})
        )
        for name in SYNC_TABLES
    }


SHARED_IDS_SQL = """
with named as (
    select
        kind = 'negative_balance' as by_rejection,
        if(by_rejection,
           json_extract_string(payload, '$.data.transactionId'),
           json_extract_string(payload, '$.transaction.id')) as id
    from read_parquet($path)
    where kind in ('sync_started', 'negative_balance')
)
select id from named where id is not null
group by id having count(*) filter (where not by_rejection) > 1 or bool_or(by_rejection)
"""


def shared_transaction_ids(log_events_file: Path) -> frozenset[str]:
    """Transaction ids of a day's ``log_events`` file logged more than once, or named by a rejection.

    Only these can be touched by a later part of the day (a redelivery, a rejection); DuckDB reads
    just the two columns it needs.
    """
    with duckdb.connect(config={"memory_limit": "512MB"}) as connection:
        rows = connection.execute(SHARED_IDS_SQL, {"path": str(log_events_file)}).fetchall()
    return frozenset(row[0] for row in rows)


def _payload(event: Mapping[str, Any]) -> Any:
    text = event["payload"]
    if not text:
        return None
    try:  # payloads hold exact decimals as strings: orjson reads them exactly, and fast
        return orjson.loads(text)
    except orjson.JSONDecodeError:  # integers beyond 64 bits
        return json.loads(text)


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


class SyncDay:
    """Builds the five sync tables of one day part by part, handing each part's rows out as it ends.

    A part holds whole invocations (the row groups of ``log_events`` never split a stream file).
    ``add`` returns the rows of a part, in the order of the day's tables, as soon as the part is read,
    so a big day is never held whole. Two things can still change rows handed out earlier:

    - a transaction named again by a later part (an SQS redelivery, a rejection) changes its
      outcome or its times logged. ``shared_ids`` (see ``shared_transaction_ids``) names the
      transactions that can; without it, any transaction can, and each is kept until the day ends;
    - a discrepancy or rejection without a currency takes the user's last currency of the day,
      which a later part can change.

    ``corrections()``, once the day is read, gives the cells of those rows that changed, by table
    and row number: apply them with ``with_corrections`` (the rows' order never changes).
    """

    def __init__(self, shared_ids: frozenset[str] | None = None) -> None:
        self.shared_ids = shared_ids
        self.invocations: list[dict[str, Any]] = []
        self.discrepancies: list[dict[str, Any]] = []
        self.rejections: list[dict[str, Any]] = []
        self.errors: list[dict[str, Any]] = []
        self.new: list[dict[str, Any]] = []  # the transactions first logged in the current part
        self.transactions: dict[str, dict[str, Any]] = {}  # those a later part can still change
        self.handed_out: dict[str, tuple[int, tuple[Any, ...]]] = {}  # their row and settled cells
        self.user_currency: dict[str, str] = {}  # the last currency seen for each user
        # per table, the rows whose currency came from the user's: row, user, currency handed out
        self.filled: dict[str, list[tuple[int, str, str | None]]] = defaultdict(list)
        self.rows: Counter[str] = Counter()  # rows handed out, per table

    def add(self, events: Iterable[Mapping[str, Any]]) -> dict[str, pa.Table]:
        """Read one part's events; return its rows of each table (tables without rows left out)."""
        by_request: dict[str | None, list[Mapping[str, Any]]] = defaultdict(list)
        for event in events:
            by_request[event["request_id"]].append(event)
        for request_id, sequence in by_request.items():
            if request_id is not None:
                self.invocation(request_id, sequence)
            else:
                self.orphans(sequence)
        return self._end_part()

    def corrections(self) -> dict[str, dict[int, dict[str, Any]]]:
        """Once every part is added: the cells that changed after their rows were handed out."""
        result: dict[str, dict[int, dict[str, Any]]] = {}
        transactions = {
            row: dict(zip(_SETTLED, settled, strict=True))
            for transaction_id, (row, handed_out) in self.handed_out.items()
            if (settled := _settled(self.transactions[transaction_id])) != handed_out
        }
        if transactions:
            result["transactions"] = transactions
        for name, filled in self.filled.items():
            currencies = {
                row: {"currency": currency}
                for row, user_id, handed_out in filled
                if (currency := self.user_currency.get(user_id)) != handed_out
            }
            if currencies:
                result[name] = currencies
        return result

    def _end_part(self) -> dict[str, pa.Table]:
        pieces: dict[str, pa.Table] = {}
        for name, rows in (
            ("invocations", self.invocations),
            ("balance_discrepancies", self.discrepancies),
            ("negative_balance_rejections", self.rejections),
            ("processing_errors", self.errors),
        ):
            if name in _CURRENCY_FROM_USER:
                self._fill_currency(name, rows)
            if rows:
                pieces[name] = to_table(name, rows)
                self.rows[name] += len(rows)
                rows.clear()
        if self.new:
            first = self.rows["transactions"]
            for row, transaction in enumerate(self.new, start=first):
                transaction_id = transaction["transaction_id"]
                if self.shared_ids is None or transaction_id in self.shared_ids:
                    self.handed_out[transaction_id] = (row, _settled(transaction))
                else:  # no later part names it: it is settled
                    del self.transactions[transaction_id]
            table = to_table("transactions", self.new)
            index = table.schema.get_field_index("outcome")
            outcome = pc.fill_null(table["outcome"], UNKNOWN)
            pieces["transactions"] = table.set_column(index, table.schema.field(index), outcome)
            self.rows["transactions"] += len(self.new)
            self.new = []
        return {name: pieces[name] for name in SYNC_TABLES if name in pieces}

    def _fill_currency(self, name: str, rows: list[dict[str, Any]]) -> None:
        """Rows without a currency take the user's last currency so far (corrected at the day's end)."""
        for row_number, row in enumerate(rows, start=self.rows[name]):
            if row["currency"] is None:
                row["currency"] = self.user_currency.get(row["user_id"])
                self.filled[name].append((row_number, row["user_id"], row["currency"]))

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
        if row["currency"]:
            self.user_currency[row["user_id"]] = row["currency"]
        self.transactions[transaction_id] = row
        self.new.append(row)
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


_SETTLED = ("outcome", "outcome_detail", "times_logged")  # what a later part can change
_CURRENCY_FROM_USER = ("balance_discrepancies", "negative_balance_rejections")


def _settled(transaction: Mapping[str, Any]) -> tuple[Any, ...]:
    """A transaction's cells that a later part can change, as they would be written now."""
    outcome = transaction["outcome"] if transaction["outcome"] is not None else UNKNOWN
    return outcome, transaction["outcome_detail"], transaction["times_logged"]
