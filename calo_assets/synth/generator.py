"""Synthetic CloudWatch exports of the balance-sync Lambda, in the real layout and line shapes.

Everything is drawn from one ``random.Random(seed)``, so the same parameters give the same bytes.
Balances are computed in binary floating point, as the Node service does, so amounts carry the same
float noise as the real logs (``60.181000000000004``); the printed text is the truth.

What an export holds (each family of the real export, and its traps):
cold starts (``INIT_START``, ``Init Duration``), several SQS messages per invocation, typed and legacy
untyped transactions, applied / skipped / rejected syncs, balance discrepancies with their metric
lines, SQS bodies with fake personal data, backtick-quoted metadata, Slack notifications with
``[Object]`` placeholders, init failures (``Uncaught Exception``, ``INIT_REPORT``, ``Runtime.Unknown``),
XRAY lines, streams that run past midnight, chunks of a stream written out of time order, a plain
copy of one ``.gz`` stream and ``.DS_Store`` junk.
"""

from __future__ import annotations

import heapq
import json
import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from isal import igzip

from calo_assets.logs.inspect_literal import Placeholder
from calo_assets.synth.node_inspect import inspect, js_number

CURRENCIES = {"BHD": 3, "SAR": 2, "AED": 2, "KWD": 3, "QAR": 2}
COUNTRY = {"BHD": "BH", "SAR": "SA", "AED": "AE", "KWD": "KW", "QAR": "QA"}
DEBIT_ACTIONS = [
    ("MANUAL_DEDUCTION", "DELIVERY_DEDUCTION", 40),
    ("MANUAL_DEDUCTION", "REPLACE_FOOD", 1),
    ("MANUAL_DEDUCTION", "LEAVING_THE_COUNTRY", 1),
    ("REFUND", "REFUNDED_MANUALLY", 1),
]
CREDIT_ACTIONS = [
    ("PAYMENT", "RENEW_SUBSCRIPTION", 4),
    ("PAYMENT", "PAY_PENDING_AMOUNT", 2),
    ("MANUAL_ADDITION", "CUSTOMERS_CALO_EXPERIMENTS", 2),
    ("PAYMENT", "ADD_DELIVERY_ADDONS", 1),
    ("MANUAL_ADDITION", "COMPENSATION", 1),
    ("MANUAL_ADDITION", "CX_GIFT", 1),
]
FIRST_NAMES = [
    "Delbert",
    "Amina",
    "Yousef",
    "Sara",
    "Omar",
    "Layla",
    "Hamad",
    "Noor",
    "Khalid",
    "Mariam",
]
LAST_NAMES = ["Hamed", "Al-Sayed", "Rahman", "Haddad", "Nasser", "Karim", "Salem", "Aziz"]
RUNTIME_ARN = "arn:aws:lambda:us-east-1::runtime:4cb686be08f980f530c1cbdeae970951c08b712057b80e8698cf4641214607d6"
_BYTES_PER_INVOCATION = 1550  # measured on generated exports; sizes the day for --bytes-per-day
NEGATIVE_MESSAGE = (
    "Subscriber will have a negative balance due to this action, the process will terminate."
)


@dataclass(frozen=True)
class SynthConfig:
    """What to generate: days from ``start``, invocations per day, seed, and how often each trap occurs."""

    start: date = date(2024, 3, 1)
    days: int = 7
    invocations_per_day: int = 60
    bytes_per_day: int | None = (
        None  # when set, invocations are added until the day's text is this big
    )
    seed: int = 7
    users: int = 40
    legacy_until: date | None = (
        None  # transactions before this day are logged without type (legacy)
    )
    compression_level: int = 2

    @property
    def legacy_cutoff(self) -> date:
        return self.legacy_until or self.start + timedelta(days=max(1, self.days // 3))


@dataclass
class Truth:
    """What the generator wrote, for exact tests: counts by family and exact sums by currency."""

    streams: int = 0
    invocations: int = 0
    cold_starts: int = 0
    transactions: int = 0
    legacy_transactions: int = 0
    credits: int = 0
    debits: int = 0
    published: int = 0
    skipped: int = 0
    rejections: int = 0
    discrepancies: int = 0
    discrepancy_users: set[str] = field(default_factory=set)
    uncaught_exceptions: int = 0
    arithmetic_breaks: int = 0
    continuity_breaks: int = 0
    records: int = 0
    days_with_transactions: set[str] = field(default_factory=set)
    amount_by_currency: dict[str, Decimal] = field(default_factory=dict)
    duplicate_files: int = 0
    junk_files: int = 0

    def as_dict(self) -> dict:
        out = dict(self.__dict__)
        out["discrepancy_users"] = len(self.discrepancy_users)
        out["days_with_transactions"] = sorted(self.days_with_transactions)
        out["amount_by_currency"] = {
            key: str(value) for key, value in sorted(self.amount_by_currency.items())
        }
        return out


@dataclass
class _User:
    user_id: str
    currency: str
    balance: float
    payment_balance: float
    name: str
    email: str
    phone: str
    last_applied_new: float | None = None


@dataclass(frozen=True)
class _Draft:
    """One transaction as the service will log it (balances as the float arithmetic left them)."""

    transaction_id: str
    legacy: bool
    credit: bool
    source: str
    action: str
    amount: float
    vat: float
    old: float
    new: float


class _Stream:
    """The records of one Lambda execution environment, as (time, text) pairs."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self.records: list[tuple[datetime, str]] = []

    def add(self, when: datetime, text: str) -> None:
        self.records.append((when, text))


def _ts(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


class Generator:
    """Writes one export; ``run`` returns the truth about what it wrote."""

    def __init__(self, config: SynthConfig) -> None:
        self.config = config
        self._invocation_day = config.start
        self.random = random.Random(config.seed)
        self.truth = Truth()
        self.users = [self._user() for _ in range(config.users)]

    # -- identities -----------------------------------------------------------------------------
    def _uuid(self) -> str:
        return str(uuid.UUID(int=self.random.getrandbits(128), version=4))

    def _hex(self, length: int) -> str:
        return f"{self.random.getrandbits(length * 4):0{length}x}"

    def _ulid(self) -> str:
        alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
        return "01H" + "".join(self.random.choice(alphabet) for _ in range(23))

    def _user(self) -> _User:
        currency = self.random.choices(list(CURRENCIES), weights=[5, 4, 1, 1, 1])[0]
        first, last = self.random.choice(FIRST_NAMES), self.random.choice(LAST_NAMES)
        balance = float(self.random.randrange(50, 3000))
        drift = self.random.random() < 0.3
        return _User(
            user_id=self._uuid(),
            currency=currency,
            balance=balance,
            payment_balance=balance + (self.random.randrange(-400, 900) if drift else 0),
            name=f"{first} {last}",
            email=f"{first.lower()}.{last.lower().replace('-', '')}{self.random.randrange(10, 99)}@example.com",
            phone=f"+973{self.random.randrange(30000000, 39999999)}",
        )

    # -- the export ------------------------------------------------------------------------------
    def run(self, output: Path) -> Truth:
        export = output / self._uuid()
        streams: list[_Stream] = []
        for offset in range(self.config.days):
            day_streams = self._day(self.config.start + timedelta(days=offset))
            for stream in day_streams:
                self._write_stream(export, stream)
                stream.records.clear()  # written: keep memory to one day's text
            streams.extend(day_streams)
        self._add_junk(export, streams)
        return self.truth

    def _day(self, day: date) -> list[_Stream]:
        """Plan the day's streams, then play their invocations in time order across streams, so each
        user's balance evolves in the order the logs show (the continuity rule holds)."""
        target_bytes = self.config.bytes_per_day
        remaining = (
            self.config.invocations_per_day
            if target_bytes is None
            else max(1, target_bytes // _BYTES_PER_INVOCATION)
        )
        midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)
        streams: list[_Stream] = []
        queue: list[tuple[datetime, int, int, int, bool]] = []
        while remaining > 0:
            count = min(remaining, self.random.randint(1, 10))
            remaining -= count
            # The last stream of a day starts shortly before midnight and runs past it.
            begin = (
                midnight + timedelta(days=1, seconds=-(count // 2 + 1))
                if remaining <= 0 and count > 1
                else midnight + timedelta(seconds=self.random.randrange(0, 23 * 3600))
            )
            stream = _Stream(f"{day.isoformat()}-[$LATEST]{self._hex(32)}")
            stream.add(
                begin,
                f"INIT_START Runtime Version: nodejs:20.v15\tRuntime Version ARN: {RUNTIME_ARN}",
            )
            self.truth.cold_starts += 1
            self.truth.records += 1
            first = begin + timedelta(milliseconds=self.random.randrange(400, 900))
            heapq.heappush(queue, (first, len(streams), 0, count, self.random.random() < 0.04))
            streams.append(stream)
        while queue:
            when, index, done, count, init_fails = heapq.heappop(queue)
            if done == 0 and init_fails:
                when = self._failed_init(streams[index], when)
            else:
                when = self._invocation(streams[index], when, cold=done == 0)
            if done + 1 < count:
                pause = timedelta(seconds=self.random.choice([1, 2, 2, 3]))
                heapq.heappush(queue, (when + pause, index, done + 1, count, init_fails))
        return streams

    def _failed_init(self, stream: _Stream, when: datetime) -> datetime:
        request_id = self._uuid()
        error = {
            "errorType": "Error",
            "errorMessage": "Cannot find module '/var/task/node_modules/aws-sdk/clients/dynamodb'",
            "code": "ERR_MODULE_NOT_FOUND",
            "stack": [
                "Error [ERR_MODULE_NOT_FOUND]: Cannot find module",
                "    at new NodeError (node:internal/errors:406:5)",
            ],
        }
        stream.add(
            when,
            f"{_ts(when)}\tundefined\tERROR\tUncaught Exception \t{json.dumps(error, separators=(',', ':'))}",
        )
        when += timedelta(milliseconds=90)
        stream.add(
            when,
            "INIT_REPORT Init Duration: 766.09 ms\tPhase: invoke\tStatus: error\tError Type: Runtime.ExitError",
        )
        stream.add(when, f"START RequestId: {request_id} Version: $LATEST")
        when += timedelta(milliseconds=15)
        stream.add(when, "Unknown application error occurred\nRuntime.Unknown")
        stream.add(when, f"END RequestId: {request_id}")
        stream.add(
            when,
            f"REPORT RequestId: {request_id}\tDuration: 781.72 ms\tBilled Duration: 782 ms\t"
            "Memory Size: 1024 MB\tMax Memory Used: 41 MB\t\nXRAY TraceId: "
            f"1-{self._hex(8)}-{self._hex(24)}\tSegmentId: {self._hex(16)}\tSampled: true\t",
        )
        self.truth.uncaught_exceptions += 1
        self.truth.invocations += 1
        self.truth.records += 7  # uncaught, INIT_REPORT, START, runtime error, END, REPORT, XRAY
        return when

    def _app(
        self, stream: _Stream, when: datetime, request_id: str, level: str, message: str
    ) -> None:
        stream.add(when, f"{_ts(when)}\t{request_id}\t{level}\t{message}")
        self.truth.records += 1

    def _invocation(self, stream: _Stream, when: datetime, cold: bool) -> datetime:
        request_id = self._uuid()
        started = when
        self._invocation_day = when.date()
        stream.add(when, f"START RequestId: {request_id} Version: $LATEST")
        self.truth.invocations += 1
        self.truth.records += 1
        for _ in range(self.random.choice([1, 1, 1, 2, 3])):
            when += timedelta(milliseconds=self.random.randrange(5, 60))
            when = self._message(stream, when, request_id)
        when += timedelta(milliseconds=self.random.randrange(5, 40))
        duration = (when - started).total_seconds() * 1000 + self.random.random()
        init = f"Init Duration: {self.random.uniform(600, 950):.2f} ms\t" if cold else ""
        xray = self.random.random() < 0.1
        report = (
            f"REPORT RequestId: {request_id}\tDuration: {duration:.2f} ms\tBilled Duration: {int(duration) + 1} ms\t"
            f"Memory Size: 1024 MB\tMax Memory Used: {self.random.randrange(90, 130)} MB\t{init}"
        )
        if xray:
            report += f"\nXRAY TraceId: 1-{self._hex(8)}-{self._hex(24)}\tSegmentId: {self._hex(16)}\tSampled: true\t"
            self.truth.records += 1
        stream.add(when, f"END RequestId: {request_id}")
        stream.add(when, report)
        self.truth.records += 2
        return when

    def _message(self, stream: _Stream, when: datetime, request_id: str) -> datetime:
        user = self.random.choice(self.users)
        self._app(stream, when, request_id, "INFO", f"Processing message {self._uuid()}")
        roll = self.random.random()
        if roll < 0.03:
            when += timedelta(milliseconds=2)
            self._app(
                stream,
                when,
                request_id,
                "INFO",
                "Skipping the balance sync for create subscription, "
                "it will be synced from create subscription payment listener",
            )
            return when
        legacy = self._invocation_day < self.config.legacy_cutoff
        credit = self.random.random() < 0.08
        source, action, _ = self.random.choices(
            CREDIT_ACTIONS if credit else DEBIT_ACTIONS,
            weights=[weight for *_, weight in (CREDIT_ACTIONS if credit else DEBIT_ACTIONS)],
        )[0]
        minor = CURRENCIES[user.currency]
        amount = round(
            self.random.uniform(3, 400 if credit else 60), self.random.choice([0, 0, 1, minor])
        )
        vat = round(amount * 0.1, minor) if credit and self.random.random() < 0.5 else 0
        rejected = not credit and self.random.random() < 0.01
        if rejected:
            amount = round(user.balance + self.random.uniform(5, 50), minor)
        net = amount - vat
        if self.random.random() < 0.01:  # an unlogged change of the balance: the chain breaks here
            user.balance += self.random.choice([-1, 1]) * self.random.randrange(1, 50)
        old = user.balance
        new = old + net if credit else old - net
        if legacy and self.random.random() < 0.02:  # a legacy row whose new balance does not add up
            new += self.random.choice([-1, 1]) * self.random.randrange(1, 40)
            self.truth.arithmetic_breaks += 1
        draft = _Draft(self._ulid(), legacy, credit, source, action, amount, vat, old, new)
        transaction_id = draft.transaction_id
        if self.random.random() < 0.05:
            self._sqs_body(stream, when, request_id, user, draft)
        when += timedelta(milliseconds=self.random.randrange(3, 40))
        self._start_sync(stream, when, request_id, user, draft)
        when += timedelta(milliseconds=self.random.randrange(20, 120))
        if rejected:
            payload = {
                "message": NEGATIVE_MESSAGE,
                "data": {
                    "userId": user.user_id,
                    "currentBalance": js_number(old),
                    "transactionId": transaction_id,
                },
            }
            self._app(stream, when, request_id, "INFO", inspect(payload))
            self._metric(stream, when, "negativeBalance", user, action)
            self.truth.rejections += 1
            return when
        skip = self.random.random()
        if skip < 0.03:
            self._app(
                stream,
                when,
                request_id,
                "INFO",
                "Skipping the process, balance is already synced from other listeners",
            )
            self.truth.skipped += 1
        elif skip < 0.05:
            detail = inspect({"transactionAction": action})
            self._app(
                stream,
                when,
                request_id,
                "INFO",
                f"Skipping the process, Update Payment Balance Flag is set to false {detail}",
            )
            self.truth.skipped += 1
        else:
            if user.last_applied_new is not None and old != user.last_applied_new:
                self.truth.continuity_breaks += 1
            user.balance = user.last_applied_new = new
            user.payment_balance = (
                user.payment_balance + net if credit else user.payment_balance - net
            )
            self._app(
                stream, when, request_id, "INFO", "SubscriptionBalanceUpdated event published"
            )
            self.truth.published += 1
        if user.payment_balance != user.balance:
            when += timedelta(milliseconds=self.random.randrange(5, 30))
            self._discrepancy(stream, when, request_id, user, action)
        return when

    def _start_sync(
        self, stream: _Stream, when: datetime, request_id: str, user: _User, draft: _Draft
    ) -> None:
        transaction: dict = {"id": draft.transaction_id}
        if not draft.legacy:
            metadata = {
                "walletId": f"wallet#{user.user_id}",
                "walletSk": self._uuid(),
                "version": "syncBalanceSQS",
            }
            if self.random.random() < 0.05:  # a gift card: both quote kinds, so Node uses backticks
                gift = {
                    "addonCategory": "GIFT_CARDS",
                    "notificationInfo": {
                        "receiver": "friend",
                        "receiverName": user.name,
                        "senderName": self.random.choice(FIRST_NAMES),
                        "giftMessage": 'Enjoy your "healthy" meals, it\'s on me',
                        "deliveryInfo": {"deliveryType": "email", "email": user.email},
                    },
                }
                metadata["addons"] = json.dumps([{"quantity": 1, "addonConfig": gift}])
            transaction.update(
                {
                    "type": "CREDIT" if draft.credit else "DEBIT",
                    "source": draft.source,
                    "action": draft.action,
                    "userId": user.user_id,
                    "paymentBalance": js_number(user.payment_balance),
                    "updatePaymentBalance": True,
                    "metadata": json.dumps(metadata, separators=(",", ":")),
                }
            )
        else:
            transaction["userId"] = user.user_id
        amount_text = js_number(draft.amount)
        transaction.update(
            {
                "currency": user.currency,
                "amount": amount_text,
                "vat": js_number(draft.vat),
                "oldBalance": js_number(draft.old),
                "newBalance": js_number(draft.new),
            }
        )
        self._app(
            stream,
            when,
            request_id,
            "INFO",
            f"Start syncing the balance {inspect({'transaction': transaction})}",
        )
        truth = self.truth
        truth.transactions += 1
        truth.legacy_transactions += draft.legacy
        direction_credit = draft.credit if not draft.legacy else draft.new >= draft.old
        truth.credits += direction_credit
        truth.debits += not direction_credit
        truth.days_with_transactions.add(self._invocation_day.isoformat())
        truth.amount_by_currency[user.currency] = truth.amount_by_currency.get(
            user.currency, Decimal(0)
        ) + Decimal(amount_text)

    def _sqs_body(
        self, stream: _Stream, when: datetime, request_id: str, user: _User, draft: _Draft
    ) -> None:
        body = {
            "id": draft.transaction_id,
            "type": "CREDIT" if draft.credit else "DEBIT",
            "source": draft.source,
            "action": draft.action,
            "amount": draft.amount,
            "vat": draft.vat,
            "userBalance": user.balance,
            "userId": user.user_id,
            "name": user.name,
            "email": user.email,
            "phoneNumber": user.phone,
            "brand": "CALO",
            "currency": user.currency,
            "updatePaymentBalance": True,
        }
        text = json.dumps(body, separators=(",", ":"))
        shape = self.random.choice(["transaction", "record.body", "record"])
        if shape == "record":
            record = {
                "messageId": self._uuid(),
                "receiptHandle": "AQEB" + self._hex(40),
                "body": text,
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": str(int(when.timestamp() * 1000)),
                    "MessageGroupId": user.user_id,
                    "MessageDeduplicationId": draft.transaction_id,
                },
                "messageAttributes": {},
                "eventSource": "aws:sqs",
                "awsRegion": "us-east-1",
            }
            self._app(stream, when, request_id, "INFO", f"record {inspect(record)}")
        else:
            self._app(stream, when, request_id, "INFO", f"{shape} {text}")

    def _discrepancy(self, stream, when, request_id, user, action) -> None:
        payload = {
            "userId": user.user_id,
            "subscriptionBalance": js_number(user.balance),
            "paymentBalance": js_number(user.payment_balance),
        }
        self._app(
            stream,
            when,
            request_id,
            "ERROR",
            f"Subscription balance and payment balance are not in sync {inspect(payload)}",
        )
        self.truth.discrepancies += 1
        self.truth.discrepancy_users.add(user.user_id)
        if self.random.random() < 0.2:
            self._metric(stream, when, "subBalanceDiscrapancy", user, action)
        if self.random.random() < 0.02:
            slack = {
                "country": COUNTRY[user.currency],
                "channel": "subscription-service-alarms",
                "brand": "CALO",
                "suppress": False,
                "blocks": [
                    {"type": "section", "text": Placeholder("[Object]")},
                    {"type": "section", "fields": Placeholder("[Array]")},
                ],
            }
            self._app(
                stream,
                when,
                request_id,
                "INFO",
                f"Sending slack notification {inspect(slack)} arn:aws:sns:us-east-1:000000000000:send-slack",
            )

    def _metric(self, stream, when, name, user, action) -> None:
        metric = {
            "_aws": {
                "Timestamp": int(when.timestamp() * 1000),
                "CloudWatchMetrics": [
                    {
                        "Namespace": "apiService",
                        "Dimensions": [["service"]],
                        "Metrics": [{"Name": name, "Unit": "Count"}],
                    }
                ],
            },
            "service": "syncBalanceSQS",
            name: 1,
            "userId": user.user_id,
            "action": action,
        }
        stream.add(when, json.dumps(metric, separators=(",", ":")))
        self.truth.records += 1

    # -- files -----------------------------------------------------------------------------------
    def _write_stream(self, export: Path, stream: _Stream) -> None:
        lines = [f"{_ts(when)} {text}\n" for when, text in stream.records]
        starts = [
            index for index, (_, text) in enumerate(stream.records) if text.startswith("START ")
        ]
        if len(starts) > 2 and self.random.random() < 0.1:  # the export wrote a later chunk first
            cut = self.random.choice(starts[1:])
            lines = lines[cut:] + lines[:cut]
        folder = export / stream.folder
        folder.mkdir(parents=True, exist_ok=True)
        data = "\n".join(lines).encode()
        level = max(0, min(self.config.compression_level, 3))  # ISA-L's levels
        (folder / "000000.gz").write_bytes(igzip.compress(data, compresslevel=level, mtime=0))
        self.truth.streams += 1

    def _add_junk(self, export: Path, streams: list[_Stream]) -> None:
        first = export / streams[0].folder
        (first / "000000").write_bytes(igzip.decompress((first / "000000.gz").read_bytes()))
        self.truth.duplicate_files += 1
        for stream in streams[1 : len(streams) : max(1, len(streams) // 3)][:3]:
            (export / stream.folder / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1" + bytes(16))
            self.truth.junk_files += 1


def generate(output: Path, config: SynthConfig) -> Truth:
    """Write a synthetic export under ``output`` and return what it holds."""
    output.mkdir(parents=True, exist_ok=True)
    return Generator(config).run(output)
