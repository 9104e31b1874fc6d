"""Build small CloudWatch stream texts for tests, line shapes as in the real export; count the records
of stream files from their raw bytes, without the reader."""

from __future__ import annotations

import gzip
import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from calo_assets.synth.node_inspect import JsNumber, inspect


class StreamText:
    """Append records with increasing timestamps; ``text`` is the stream file's content."""

    def __init__(self, day: str = "2024-01-05", start: str = "10:00:00") -> None:
        self.day = day
        hours, minutes, seconds = (int(part) for part in start.split(":"))
        self.millis = ((hours * 60 + minutes) * 60 + seconds) * 1000
        self.records: list[str] = []

    def ts(self) -> str:
        self.millis += 7
        millis = self.millis
        day = self.day
        if millis >= 86_400_000:  # past midnight
            from datetime import date, timedelta

            day = (date.fromisoformat(day) + timedelta(days=1)).isoformat()
            millis -= 86_400_000
        hours, rest = divmod(millis, 3_600_000)
        minutes, rest = divmod(rest, 60_000)
        seconds, ms = divmod(rest, 1000)
        return f"{day}T{hours:02d}:{minutes:02d}:{seconds:02d}.{ms:03d}Z"

    def raw(self, body: str) -> StreamText:
        self.records.append(f"{self.ts()} {body}")
        return self

    def app(self, request_id: str, level: str, message: str) -> StreamText:
        ts = self.ts()
        self.records.append(f"{ts} {ts}\t{request_id}\t{level}\t{message}")
        return self

    def start(self, request_id: str) -> StreamText:
        return self.raw(f"START RequestId: {request_id} Version: $LATEST")

    def end(self, request_id: str, init_ms: str | None = None) -> StreamText:
        self.raw(f"END RequestId: {request_id}")
        init = f"Init Duration: {init_ms} ms\t" if init_ms else ""
        return self.raw(
            f"REPORT RequestId: {request_id}\tDuration: 12.50 ms\tBilled Duration: 13 ms\t"
            f"Memory Size: 1024 MB\tMax Memory Used: 100 MB\t{init}"
        )

    def message(self, request_id: str) -> StreamText:
        return self.app(
            request_id, "INFO", "Processing message 4b258b8a-26c0-4501-9ac3-228976cd9e9e"
        )

    def sync(
        self,
        request_id: str,
        transaction_id: str,
        user: str = "u1",
        currency: str = "BHD",
        *,
        amount: str = "5",
        vat: str = "0",
        old: str = "100",
        new: str = "95",
        kind: str | None = "DEBIT",
        action: str = "DELIVERY_DEDUCTION",
    ) -> StreamText:
        transaction: dict = {"id": transaction_id}
        if kind:
            transaction.update(
                {
                    "type": kind,
                    "source": "MANUAL_DEDUCTION",
                    "action": action,
                    "userId": user,
                    "paymentBalance": JsNumber(new),
                    "updatePaymentBalance": True,
                    "metadata": "{}",
                }
            )
        else:
            transaction["userId"] = user
        transaction.update(
            {
                "currency": currency,
                "amount": JsNumber(amount),
                "vat": JsNumber(vat),
                "oldBalance": JsNumber(old),
                "newBalance": JsNumber(new),
            }
        )
        return self.app(
            request_id, "INFO", f"Start syncing the balance {inspect({'transaction': transaction})}"
        )

    def published(self, request_id: str) -> StreamText:
        return self.app(request_id, "INFO", "SubscriptionBalanceUpdated event published")

    def discrepancy(
        self, request_id: str, user: str, subscription: str, payment: str
    ) -> StreamText:
        payload = {
            "userId": user,
            "subscriptionBalance": JsNumber(subscription),
            "paymentBalance": JsNumber(payment),
        }
        return self.app(
            request_id,
            "ERROR",
            f"Subscription balance and payment balance are not in sync {inspect(payload)}",
        )

    def rejection(
        self, request_id: str, user: str, transaction_id: str, balance: str
    ) -> StreamText:
        payload = {
            "message": "Subscriber will have a negative balance due to this action, the process will terminate.",
            "data": {
                "userId": user,
                "currentBalance": JsNumber(balance),
                "transactionId": transaction_id,
            },
        }
        return self.app(request_id, "INFO", inspect(payload))

    @property
    def text(self) -> str:
        return "\n\n".join(self.records) + "\n"

    def write(self, root: Path, name: str | None = None, compress: bool = True) -> Path:
        folder = (
            root / "export" / (name or f"{self.day}-[$LATEST]{abs(hash(self.text)) % 10**12:012d}")
        )
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / ("000000.gz" if compress else "000000")
        path.write_bytes(
            gzip.compress(self.text.encode(), mtime=0) if compress else self.text.encode()
        )
        return path


# A record starts at a line beginning with an ISO timestamp and a space, or with "XRAY TraceId: "
# (README, "Reading the logs"), whatever the line ends are.
_RECORD_START = re.compile(rb"(\d{4}-\d\d-\d\d)T\d\d:\d\d:\d\d(?:\.\d{1,9})?Z |XRAY TraceId: ")
# Platform lines name their request id; application lines carry it after their own timestamp.
_REQUEST_ID = re.compile(rb"(?:START|END|REPORT) RequestId: ([^\s]+)|[^\t]+\t([^\t]+)\t[A-Z]+\t")


def record_lines(data: bytes) -> list[bytes]:
    """The first line of every record of a stream file's text."""
    return [line for line in re.split(rb"\r\n|\r|\n", data) if _RECORD_START.match(line)]


def records_in(data: bytes) -> int:
    """Records of a stream file's text, counted here: lines that start with a timestamp or XRAY."""
    return len(record_lines(data))


def records_by_day(paths: Iterable[Path]) -> Counter[str]:
    """Records of the gzip stream files ``paths`` by the UTC day they belong to, counted from their
    bytes by the README's rule ("Which day a record belongs to"): the day of the invocation's START
    line; records logged before it (INIT_START, INIT_REPORT, request id ``undefined``) go to the
    invocation that follows, records without a request id inside an invocation (XRAY, metric lines)
    to that invocation; a record whose file holds no START for it keeps its own day."""
    counted: Counter[str] = Counter()
    for path in paths:
        records = []  # (its timestamp's day, its request id, START, before a START, or neither)
        own = ""
        for line in record_lines(gzip.decompress(path.read_bytes())):
            stamp = _RECORD_START.match(line)
            rest = line[stamp.end() :]
            own = stamp[1].decode() if stamp[1] else own  # XRAY: the timestamp of the record before
            named = _REQUEST_ID.match(rest)
            request_id = named and (named[1] or named[2])
            if rest.startswith(b"START "):
                records.append((own, request_id, "start"))
            elif rest.startswith((b"INIT_START", b"INIT_REPORT")) or request_id == b"undefined":
                records.append((own, None, "before"))
            else:
                records.append((own, request_id, ""))
        start_day = {request_id: own for own, request_id, kind in records if kind == "start"}
        current = None  # the day of the invocation under way
        waiting: list[str] = []  # records before a START
        for own, request_id, kind in records:
            if kind == "start":
                current = own
                counted[own] += 1 + len(waiting)
                waiting.clear()
            elif request_id is not None:
                counted[start_day.get(request_id, own)] += 1
            elif kind == "before" or current is None:
                waiting.append(own)
            else:
                counted[current] += 1
        counted.update(waiting)  # no START followed them
    return counted
