"""Property and fuzz tests: the parser and the record assembler never fail in any way but the
quarantine path, take time linear in their input, and never recurse without bound; masking and
formula neutralisation hold against adversarial strings."""

from __future__ import annotations

import contextlib
import re
import time

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from calo_assets import privacy
from calo_assets.logs.events import RecordError, classify
from calo_assets.logs.inspect_literal import (
    LiteralError,
    find_literal,
    find_literal_json,
    parse_literal,
)
from calo_assets.logs.reader import split_records
from calo_assets.money import MoneyError, check_money, to_money
from calo_assets.privacy import mask_text
from calo_assets.report.publish import csv_safe

LITERAL_ALPHABET = st.sampled_from(
    [*"{}[]'\"`\\:, \n\tabc019.-_$", "undefined", "[Object]", "NaN", "... 2 more items"]
)


@settings(max_examples=400, deadline=None)
@given(st.lists(LITERAL_ALPHABET, max_size=80).map("".join))
def test_the_parser_fails_only_with_literal_error(text):
    with contextlib.suppress(LiteralError):
        find_literal(text)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400))
def test_any_text_classifies_or_raises_record_error(body):
    with contextlib.suppress(RecordError):
        classify(body)


LINES = st.one_of(
    st.just("2024-01-05T10:00:00.000Z START RequestId: r Version: $LATEST"),
    st.just(
        "2024-01-05T10:00:00.000Z 2024-01-05T10:00:00.000Z\tr\tINFO\tStart syncing the balance {"
    ),
    st.just("XRAY TraceId: 1-a\tSegmentId: b\tSampled: true"),
    st.just("  transaction: { id: 'T' }"),
    st.just("}"),
    st.just(""),
    st.text(max_size=40).filter(lambda line: "\n" not in line and "\r" not in line),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(LINES, max_size=40))
def test_assembly_accounts_for_every_line(lines):
    text = "\n".join(lines)
    records, problems = split_records(text)
    covered = sum(body.count("\n") + 1 for body in records.bodies)
    assert all(line >= 1 for line in records.lines)
    assert records.lines == sorted(records.lines)
    # Each non-blank line is in a record, or a problem reports what is not: nothing disappears silently.
    non_blank = sum(1 for line in lines if line.strip())
    assert problems or covered >= non_blank


def seconds(work) -> float:
    began = time.perf_counter()
    work()
    return time.perf_counter() - began


@pytest.mark.parametrize(
    "make",
    [
        lambda size: "{ a: '" + "x" * size + "' }",
        lambda size: "{ a: [ " + "1, " * (size // 3) + "1 ] }",
        lambda size: "{ s: '" + "\\'" * (size // 2) + "' }",
        lambda size: "{ a: '" + "x" * size,  # unterminated
    ],
)
def test_time_grows_linearly_with_the_input(make):
    # Both sizes beyond the CPU caches, best of three: the shared machine's noise stays out.
    small, large = 400_000, 4_000_000
    attempt = lambda size: lambda: _parse_quietly(make(size))  # noqa: E731
    best = lambda size: min(seconds(attempt(size)) for _ in range(3))  # noqa: E731
    # Ten times the input: linear work takes about ten times as long, quadratic a hundred.
    assert best(large) < 40 * max(best(small), 1e-3)


def _parse_quietly(text: str) -> None:
    with contextlib.suppress(LiteralError):
        find_literal_json(text)  # the compiled path, then the Python one where it gives up


def test_deep_nesting_is_refused_not_overflowed():
    for opener, closer in (("{ a: ", " }"), ("[ ", " ]")):
        with pytest.raises(LiteralError, match="deeper"):
            parse_literal(opener * 100_000 + "1" + closer * 100_000)
    records, _ = split_records("2024-01-05T10:00:00.000Z " + "{" * 1_000_000)
    assert len(records) == 1


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ('{"email":"a.b+tag@example.co.uk"}', "a.b+tag@example.co.uk"),
        ("contact: name.surname@sub.domain.org, thanks", "name.surname@sub.domain.org"),
        ('{"phoneNumber":"+973 3608 6416"}', "3608"),
        ("call +97336086416 now", "97336086416"),
        ("{ name: 'Sara \\'The\\' Aziz' }", "Aziz"),
        ('{\\"senderName\\":\\"Omar\\"}', "Omar"),
        ('{\\\\\\"receiverName\\\\\\": \\\\\\"Layla\\\\\\"}', "Layla"),
        ('{ firstName: `Noor`, lastName: "Haddad" }', "Haddad"),
    ],
)
def test_masking_against_adversarial_strings(text, secret):
    assert secret not in mask_text(text)


def test_masking_leaves_ordinary_figures_alone():
    text = "amount +12.5 at 2024-01-05T10:00:00.000Z, id 01HHF0BMNPQV0Z240HVSDVQBJY"
    assert mask_text(text) == text


@pytest.mark.parametrize("text", ["=1+1", "+SUM(A1)", "-2", "@cmd", "\t=x", "\r=x"])
def test_csv_values_that_look_like_formulas_are_neutralised(text):
    assert csv_safe(text) == "'" + text


# The masking pattern as it was before its search started at the key's last word: the same values masked.
_KEY_FROM_ITS_FIRST_LETTER = re.compile(
    r"""(?P<key>(?:\\*["'])?(?:[A-Za-z]*(?:[Nn]ame|[Ee]mail|[Pp]hone(?:Number)?)|actor|sender|receiver|recipient)"""
    r"""(?:\\*["'])?\s*[:=]\s*)(?P<quote>\\*["'`])(?P<value>(?:\\.|.)*?)(?P=quote)""",
    re.DOTALL,
)
_MASKING_PIECES = st.sampled_from(
    [
        "userName",
        "name",
        "Name",
        "firstName",
        "email",
        "phoneNumber",
        "phone",
        "actor",
        "reactor",
        "sender",
        "recipient",
        "nameName",
        "user",
        ":",
        "=",
        " ",
        "'",
        '"',
        "`",
        "\\",
        '\\"',
        "x",
        "1",
        "{",
        "}",
        ",",
        "\n",
        "é",
    ]
)


@settings(max_examples=500, deadline=None)
@given(st.lists(_MASKING_PIECES, max_size=30).map("".join))
def test_masking_masks_what_a_search_from_every_letter_masked(text):
    assert privacy._PERSONAL_KEY.sub(privacy._mask_value, text) == _KEY_FROM_ITS_FIRST_LETTER.sub(
        privacy._mask_value, text
    )


@settings(max_examples=500, deadline=None)
@given(
    st.one_of(
        st.integers(min_value=-(10**21), max_value=10**21),
        st.from_regex(r"-?[0-9]{1,22}(\.[0-9]{0,20})?", fullmatch=True),
        st.text(st.sampled_from("0123456789.-+eE ٢x"), max_size=24),
        st.decimals(allow_nan=True, allow_infinity=True),
        st.booleans(),
    )
)
@example("1E1000000")  # once overflowed the decimal context instead of being refused
@example("-1e999999")
def test_check_money_refuses_what_to_money_refuses(value):
    try:
        to_money(value)
    except MoneyError:
        with pytest.raises(MoneyError):
            check_money(value)
    else:
        check_money(value)
