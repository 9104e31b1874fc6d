"""Classification of records into typed events, one test per message family."""

from __future__ import annotations

import json

import pytest

from calo_assets.logs.events import Event, RecordError, classify

APP = "2024-01-05T10:00:00.000Z\treq-1\t{level}\t{message}"


def app(message: str, level: str = "INFO"):
    return classify(APP.format(level=level, message=message))


def payload(event: Event):
    """The stored JSON payload of an event, decoded (fractional numbers are exact decimal text)."""
    return None if event.payload is None else json.loads(event.payload)


def test_platform_lines_with_their_figures():
    report = classify(
        "REPORT RequestId: r1\tDuration: 113.87 ms\tBilled Duration: 114 ms\tMemory Size: 1024 MB\t"
        "Max Memory Used: 107 MB\tInit Duration: 902.78 ms\t"
    )
    assert report.kind == "report" and report.request_id == "r1"
    assert payload(report) == {
        "duration_ms": "113.87",
        "billed_duration_ms": "114",
        "memory_size_mb": "1024",
        "max_memory_used_mb": "107",
        "init_duration_ms": "902.78",
    }
    start = classify("START RequestId: r1 Version: $LATEST")
    assert (start.kind, start.request_id, payload(start)) == ("start", "r1", None)
    assert classify("END RequestId: r1").kind == "end"
    init = classify("INIT_START Runtime Version: nodejs:20.v15\tRuntime Version ARN: arn:x")
    assert (init.kind, payload(init)["runtime_version"]) == ("init_start", "nodejs:20.v15")
    init_report = classify(
        "INIT_REPORT Init Duration: 766.09 ms\tPhase: invoke\tStatus: error\tError Type: Runtime.ExitError"
    )
    assert (
        payload(init_report)["status"] == "error"
        and payload(init_report)["error_type"] == "Runtime.ExitError"
    )
    xray = classify("XRAY TraceId: 1-6577fc1b\tSegmentId: 672c\tSampled: true\t")
    assert (xray.kind, payload(xray)["traceid"]) == ("xray", "1-6577fc1b")


def test_metric_runtime_error_and_unknown_lines():
    metric = classify(
        '{"_aws":{"Timestamp":1},"service":"syncBalanceSQS","negativeBalance":1,"userId":"u"}'
    )
    assert metric.kind == "metric" and payload(metric)["negativeBalance"] == 1
    runtime = classify("Unknown application error occurred\nRuntime.Unknown")
    assert (runtime.kind, payload(runtime)) == ("runtime_error", {"error_type": "Runtime.Unknown"})
    unknown = classify("something new { a: 1 }")
    assert (unknown.kind, unknown.message, payload(unknown)) == (
        "unknown",
        "something new",
        {"a": 1},
    )


def test_application_families():
    assert payload(app("Processing message 99a15ff4")) == {"message_id": "99a15ff4"}
    started = app(
        "Start syncing the balance {\n  transaction: { id: 'T', userId: 'u', amount: 1.5, oldBalance: 0, newBalance: 1.5 }\n}"
    )
    assert started.kind == "sync_started"
    assert started.payload == (
        '{"transaction":{"id":"T","userId":"u","amount":"1.5","oldBalance":0,"newBalance":"1.5"}}'
    )
    assert payload(started)["transaction"]["amount"] == "1.5"
    assert app("SubscriptionBalanceUpdated event published").kind == "sync_published"
    skipped = app(
        "Skipping the process, Update Payment Balance Flag is set to false { transactionAction: 'X' }"
    )
    assert (skipped.kind, payload(skipped)["detail"]) == (
        "sync_skipped",
        {"transactionAction": "X"},
    )
    assert app("Balance is already synced from other listeners").kind == "sync_skipped"
    gap = app(
        "Subscription balance and payment balance are not in sync {\n  userId: 'u',\n  subscriptionBalance: 453,\n  paymentBalance: 870\n}",
        "ERROR",
    )
    assert (gap.kind, gap.level, payload(gap)["paymentBalance"]) == (
        "balance_discrepancy",
        "ERROR",
        870,
    )
    rejected = app(
        "{\n  message: 'Subscriber will have a negative balance due to this action, the process will terminate.',\n  data: { userId: 'u', currentBalance: 149.362, transactionId: 'T' }\n}"
    )
    assert (
        rejected.kind == "negative_balance"
        and payload(rejected)["data"]["currentBalance"] == "149.362"
    )
    assert payload(app('transaction {"id":"T","amount":1.25}')) == {
        "id": "T",
        "amount": "1.25",
    }
    assert app("record {\n  messageId: 'm',\n  body: '{}'\n}").kind == "sqs_body"
    slack = app(
        "Sending slack notification {\n  blocks: [ { type: 'section', text: [Object] } ]\n} arn:aws:sns:x"
    )
    assert (slack.kind, slack.trailing) == ("slack_notification", "arn:aws:sns:x")


def test_uncaught_exception_outside_a_request():
    event = classify(
        '2024-01-05T10:00:00.000Z\tundefined\tERROR\tUncaught Exception \t{"errorType":"Error","errorMessage":"boom"}'
    )
    assert (event.kind, event.request_id, payload(event)["errorMessage"]) == (
        "uncaught_exception",
        None,
        "boom",
    )


def test_unknown_application_message_is_kept_generically():
    event = app("Something we never saw { detail: 'x' } tail", "WARN")
    assert (event.kind, event.level, event.message, payload(event), event.trailing) == (
        "app_message",
        "WARN",
        "Something we never saw",
        {"detail": "x"},
        "tail",
    )
    broken = app("Also new { unbalanced: 'x'")
    assert (broken.kind, payload(broken)) == ("app_message", None)


@pytest.mark.parametrize(
    ("transaction", "reason"),
    [
        ("{ userId: 'u', amount: 1, oldBalance: 0, newBalance: 1 }", "missing id"),
        ("{ id: 'T', userId: 'u', oldBalance: 0, newBalance: 1 }", "missing amount"),
        (
            "{ id: 'T', userId: 'u', amount: 'ten', oldBalance: 0, newBalance: 1 }",
            "amount not a number",
        ),
        ("{ id: 'T', userId: 'u', amount: 1, oldBalance: 0, newBalance: 1", "not closed"),
    ],
)
def test_broken_transactions_are_record_errors(transaction, reason):
    with pytest.raises(RecordError, match=reason):
        app(f"Start syncing the balance {{ transaction: {transaction} }}")


def test_integers_beyond_64_bits_are_checked_exactly():
    started = "Start syncing the balance {{ transaction: {{ id: 'T', userId: 'u', amount: {}, oldBalance: 0, newBalance: 1 }} }}"
    largest = 10**20 - 1  # the largest whole amount the warehouse type holds
    assert payload(app(started.format(largest)))["transaction"]["amount"] == largest
    with pytest.raises(RecordError, match="does not fit"):
        app(started.format(largest + 1))


def test_a_discrepancy_is_one_whatever_text_its_object_holds():
    gap = app(
        "Subscription balance and payment balance are not in sync { userId: 'u', note: 'already synced',"
        " subscriptionBalance: 1, paymentBalance: 2 }",
        "ERROR",
    )
    assert gap.kind == "balance_discrepancy"
