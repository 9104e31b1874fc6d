"""The compiled hot path: records cut as a regular expression cuts them; the commonest records typed as
``classify`` types them; literals to the same JSON as the Python path, or None (then Python decides)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from calo_assets.config import SAMPLE_LOG_DIR
from calo_assets.logs import reader
from calo_assets.logs._native import literal_json, split_records
from calo_assets.logs.events import classify, classify_common
from calo_assets.logs.export import discover
from calo_assets.logs.inspect_literal import (
    LiteralError,
    LiteralJson,
    find_literal,
    find_literal_json,
    parse_literal,
    to_json,
)
from calo_assets.synth.node_inspect import inspect
from calo_assets_tests.test_inspect_literal import _keys, _values


def python_path(text: str) -> tuple[str, str] | None:
    """What the general parser makes of ``text``: its JSON and trailing text, None if it refuses it."""
    try:
        literal = parse_literal(text)
    except LiteralError:
        return None
    return to_json(literal.value), literal.trailing


def assert_agrees(text: str) -> bool:
    """The compiled result, when there is one, equals the Python path's; True if it gave one."""
    fast = literal_json(text)
    if fast is None:
        return False
    end, json_text = fast
    assert python_path(text) == (json_text, text[end:].strip())
    return True


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "{\n  transaction: {\n    id: '01HH',\n    amount: 37.998,\n    vat: 3.454,\n    n: 7\n  }\n} tail",
            '{"transaction":{"id":"01HH","amount":"37.998","vat":"3.454","n":7}}',
        ),
        (
            "{ a: -0.5, b: 1.50, c: 0.000001, d: 0.000000 }",
            '{"a":"-0.5","b":"1.50","c":"0.000001","d":"0.000000"}',
        ),
        ("[ 1, 'x', null, true, false, [], {} ]", '[1,"x",null,true,false,[],{}]'),
        ("{ 'a-b': \"it's\", c: `a'b\"c` }", '{"a-b":"it\'s","c":"a\'b\\"c"}'),
        (
            "{ a: 'tab\\tnew\\nline \\\\ \\' \\x0b \\x7f \\xe9 \\u20ac é' }",
            '{"a":"tab\\tnew\\nline \\\\ \' \\u000b \x7f é € é"}',
        ),
        (
            "{ n: 123456789012345678, m: -123456789012345678 }",
            '{"n":123456789012345678,"m":-123456789012345678}',
        ),
        ("{ true: 1, null: 2 }", '{"true":1,"null":2}'),
    ],
)
def test_common_literals_become_stored_json(text, expected):
    assert literal_json(text)[1] == expected
    assert assert_agrees(text)


@pytest.mark.parametrize(
    "text",
    [
        "{ a: undefined }",
        "{ a: NaN }",
        "{ a: [Object] }",
        "[ [Array] ]",
        "{ a: [Circular *1] }",
        "{ a: Decimal128 { x: 1 } }",
        "{ a: 1e21 }",
        "{ a: 1234567890123456789 }",
        "{ a: 1.5e-7 }",
        "{ a: -0 }",
        "{ a: 0.0000001 }",
        "{ a: 0.0000000 }",
        "{ a: 007 }",
        "{ a: 10n }",
        "{ a: '\\v' }",
        "{ a: '\\ud83d' }",
        "{ a: 'raw\ttab' }",
        "{ a: 1, a: 2 }",
        "{ 1: 'x' }",
        "{ a: 1, }",
        "{ a: 1",
        "{ a: 'open }",
        "[ 1 2 ]",
        "{ 'a' 1 }",
        "{ ... 3 more items }",
        "text",
        "",
    ],
)
def test_anything_unusual_is_left_to_the_python_path(text):
    assert literal_json(text) is None


def test_nesting_beyond_the_fast_depth_is_left_to_the_python_path():
    deep = "{ a: " * 70 + "1" + " }" * 70
    assert literal_json(deep) is None
    assert find_literal_json(deep)[1].json == to_json(parse_literal(deep).value)


def test_end_is_counted_in_characters_not_bytes():
    text = "{ a: 'é€😀' } après"
    end, json_text = literal_json(text)
    assert (text[end:], json_text) == (" après", '{"a":"é€😀"}')


def test_lone_surrogates_are_left_to_the_python_path():
    assert literal_json("{ a: '\ud800' }") is None


def test_find_literal_json_keeps_head_class_name_and_trailing_text():
    message = "Sending slack notification Rr { a: 1.5 } arn:aws:sns:x"
    assert find_literal_json(message) == (
        "Sending slack notification",
        LiteralJson('{"a":"1.5"}', "Rr", "arn:aws:sns:x", compiled=True),
    )
    head, literal = find_literal(message)
    assert (head, to_json(literal.value)) == ("Sending slack notification", '{"a":"1.5"}')


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(_keys, _values, max_size=6))
def test_node_printed_objects_agree_with_the_python_path(obj):
    printed = inspect(obj)
    assert_agrees(printed + " trailing words")
    head, literal = find_literal_json(f"Start syncing the balance {printed} trailing")
    assert (head, literal.trailing) == ("Start syncing the balance", "trailing")
    assert literal.json == to_json(find_literal(printed)[1].value)


# Pieces of literals, valid and not: joined at random they make near-misses of every kind.
_TOKENS = st.sampled_from(
    [
        "{",
        "}",
        "[",
        "]",
        ": ",
        ", ",
        " ",
        "\n",
        "a",
        "$b_1",
        "'s'",
        '"d"',
        "`b`",
        "'it\\'s'",
        "'\\x41'",
        "'\\u00e9'",
        "'\\n'",
        "'é'",
        "1",
        "-2",
        "0.5",
        "-0.50",
        "1e5",
        "-0",
        "true",
        "null",
        "undefined",
        "[Object]",
        "'",
        "\\",
        "\t",
        "'\\v'",
    ]
)


@settings(max_examples=500, deadline=None)
@given(st.lists(_TOKENS, max_size=16).map(lambda tokens: "{" + "".join(tokens)))
def test_arbitrary_text_never_disagrees(text):
    assert_agrees(text)


def test_plain_node_objects_take_the_compiled_path():
    printed = inspect({"transaction": {"id": "T", "amount": 1, "tags": ["a", "b"], "ok": True}})
    assert literal_json(printed) is not None


# -- records: the compiled splitter against a regular expression that says the same thing ---------

_RECORD_START = re.compile(
    r"\n(?=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,9})?Z |XRAY TraceId: )", re.ASCII
)


def reference_split(text: str):
    """``(head_end, lines, stamps, bodies)`` of ``split_records``, written with ``re.split``."""
    chunks = _RECORD_START.split("\n" + text)
    head_end = len(chunks[0]) if len(chunks) > 1 else len(text)
    line = chunks[0].count("\n") + 1
    lines, stamps, bodies, previous = [], [], [], None
    for chunk in chunks[1:]:
        lines.append(line)
        if chunk.startswith("XRAY TraceId: "):
            stamps.append(previous)
            bodies.append(chunk.rstrip("\r\n"))
        else:
            previous, _, body = chunk.partition(" ")
            stamps.append(previous)
            bodies.append(body.rstrip("\r\n"))
        line += chunk.count("\n") + 1
    return head_end, lines, stamps, bodies


_LINE_PIECES = st.sampled_from(
    [
        "2024-01-05T10:00:00.000Z ",
        "2024-01-05T10:00:00Z ",
        "2024-01-05T10:00:00.123456789Z ",
        "2024-01-05T10:00:00.1234567890Z ",
        "2024-01-05T10:00:00.Z ",
        "2024-01-05T10:00:00.000Z",
        "2024-01-05 10:00:00Z ",
        "XRAY TraceId: ",
        "XRAY TraceId:",
        "START",
        "\n",
        "\r\n",
        "\r",
        " ",
        "\t",
        "x",
        "é",
        "😀",
        "{",
        "٢٠٢٤-01-05T10:00:00Z ",
    ]
)


@settings(max_examples=500, deadline=None)
@given(st.lists(_LINE_PIECES, max_size=30).map("".join))
def test_records_are_cut_as_the_reference_cuts_them(text):
    assert split_records(text) == reference_split(text)


# -- the commonest records: typed as events.classify types them ---------------------------------------

_BODY_PIECES = st.sampled_from(
    [
        "START ",
        "END ",
        "START",
        "RequestId: ",
        "RequestId:",
        "r-1",
        " Version: ",
        "$LATEST",
        "\t",
        "\n",
        " ",
        "\x0b",
        "\x1c",
        "\x85",
        "2024-01-05T10:00:00.000Z\t",
        "2024-01-05T10:00:00Z",
        "2024-01-05T:Z\t",
        "undefined\t",
        "r1\t",
        "INFO\t",
        "Info\t",
        "\t\t",
        "Processing message",
        "SubscriptionBalanceUpdated event published",
        "Start syncing the balance { a: 1 }",
        '"',
        "\\",
        "\x01",
        "é",
        "\ufffd",
        "x",
    ]
)
_PLATFORM_ITEMS = st.sampled_from(
    [
        "RequestId: r1",
        "RequestId: r1 Version: $LATEST",
        "RequestId:  r2 Version:  ",
        " RequestId: x",
        "Request Id: y",
        "Duration: 108.07 ms",
        "Billed Duration: 109 ms",
        "Memory Size: 1024 MB",
        "Init Duration: -1.5 ms",
        "Duration: 1 2 ms",
        "Duration: 1. ms",
        "Duration: ms",
        " ms",
        "Size: 7 mb",
        "Version: 9",
        "Status: error",
        "Error Type: Runtime.ExitError",
        "TraceId: 1-abc",
        "Sampled: true",
        "Name:",
        ": ",
        "a: b: c",
        'Quote: "x\\',
        "",
        " ",
        "Runtime Version: nodejs:20.v15",
        "MIXED Case: V",
        "\x0b",
        "é: 1",
    ]
)
_LINES = st.one_of(
    st.lists(_BODY_PIECES, max_size=12).map("".join),
    st.builds(
        "{}{}".format,
        st.sampled_from(["REPORT ", "INIT_START ", "INIT_REPORT ", "XRAY ", "REPORT", "START "]),
        st.lists(_PLATFORM_ITEMS, max_size=6).map("\t".join),
    ),
    st.builds(
        "{}RequestId: {}{}{}".format,
        st.sampled_from(["START ", "END "]),
        st.text(st.sampled_from("ab1- \t\x0b"), max_size=6),
        st.sampled_from(["", " Version: $LATEST", " Version: ", "\tVersion: 1"]),
        st.sampled_from(["", "\n", "\nmore", " "]),
    ),
    st.builds(
        "2024-01-05T10:00:00.000Z\t{}\t{}\t{}{}".format,
        st.sampled_from(["r1", "undefined", "a b", "x\ny"]),
        st.sampled_from(["INFO", "ERROR", "", "info"]),
        st.sampled_from(
            [
                "Processing message",
                "SubscriptionBalanceUpdated event published",
                "Processing",
                "Other",
            ]
        ),
        st.text(st.sampled_from(' x\t\n"\\\x01\x1f\x7f'), max_size=8),
    ),
)


def assert_typed_as_classify_types(bodies: list[str]) -> int:
    """Every record ``classify_common`` types is typed as ``classify`` types it; returns how many."""
    columns = classify_common(bodies)
    typed = 0
    for index, body in enumerate(bodies):
        if columns.kinds[index] is None:
            assert index in columns.others
            continue
        assert index not in columns.others
        event = classify(body)
        assert (event.kind, event.level, event.request_id, event.message, event.payload) == (
            columns.kinds[index],
            columns.levels[index],
            columns.request_ids[index],
            columns.messages[index],
            columns.payloads[index],
        )
        assert event.trailing is None
        typed += 1
    return typed


@settings(max_examples=500, deadline=None)
@given(st.lists(_LINES, max_size=8))
def test_common_records_are_typed_as_classify_types_them(bodies):
    assert_typed_as_classify_types(bodies)


def test_the_shipped_sample_is_typed_alike_and_mostly_by_the_compiled_pass():
    bodies = [
        body
        for part in discover(SAMPLE_LOG_DIR).parts
        for body in reader.split_records(reader.read_text(part.path)[0])[0].bodies
    ]
    typed = assert_typed_as_classify_types(bodies)
    assert typed > len(bodies) / 3  # the shapes are common: the pass is worth having
