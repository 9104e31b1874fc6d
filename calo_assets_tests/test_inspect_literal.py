"""The util.inspect literal parser: every literal form, errors, and a round trip with Node's printer."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from calo_assets.logs.inspect_literal import (
    MAX_DEPTH,
    UNDEFINED,
    LiteralError,
    Placeholder,
    find_literal,
    parse_literal,
)
from calo_assets.synth.node_inspect import JsNumber, inspect


def value(text: str):
    return parse_literal(text).value


def test_nested_objects_and_arrays():
    assert value("{ a: { b: [ 1, [ 2, 3 ], { c: 'd' } ] } }") == {
        "a": {"b": [1, [2, 3], {"c": "d"}]}
    }


@pytest.mark.parametrize(
    ("literal", "expected"),
    [
        (r"{ s: 'it\'s' }", "it's"),
        ("{ s: \"say 'hi'\" }", "say 'hi'"),
        ("{ s: `both \"double\" and 'single'` }", "both \"double\" and 'single'"),
        (r"{ s: 'line\nnext\ttab \\ back' }", "line\nnext\ttab \\ back"),
        (r"{ s: 'caf\u00e9' }", "café"),
        ("{ s: '' }", ""),
    ],
)
def test_strings_in_every_quote_with_escapes(literal, expected):
    assert value(literal)["s"] == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("-12", -12),
        ("60.181000000000004", Decimal("60.181000000000004")),
        ("80360.13636363637", Decimal("80360.13636363637")),
        ("-0.5", Decimal("-0.5")),
        ("1.5e-7", Decimal("1.5e-7")),
        ("2e+21", Decimal("2e21")),
        ("12345678901234567890", 12345678901234567890),
    ],
)
def test_numbers_are_exact(text, expected):
    parsed = value(f"{{ n: {text} }}")["n"]
    assert parsed == expected
    assert not isinstance(parsed, float)


def test_constants_keep_their_meaning():
    parsed = value(
        "{ t: true, f: false, n: null, u: undefined, s: 'undefined', x: NaN, i: -Infinity }"
    )
    assert parsed["t"] is True and parsed["f"] is False and parsed["n"] is None
    assert parsed["u"] is UNDEFINED
    assert parsed["s"] == "undefined" and parsed["s"] is not UNDEFINED
    assert parsed["x"].is_nan() and parsed["i"] == Decimal("-Infinity")


def test_placeholders_are_not_lists():
    parsed = value(
        "{ o: [Object], a: [Array], c: [Circular *1], f: [Function: run], m: [ 1, ... 98 more items ] }"
    )
    assert parsed == {
        "o": "[Object]",
        "a": "[Array]",
        "c": "[Circular *1]",
        "f": "[Function: run]",
        "m": [1, "... 98 more items"],
    }
    assert all(isinstance(parsed[key], Placeholder) for key in "oacf")
    assert value("{ o: '[Object]' }")["o"].__class__ is str


def test_class_prefix_reference_and_trailing_text():
    head, literal = find_literal(
        "Sending slack notification Rr { a: 1 } arn:aws:sns:us-east-1:1:topic"
    )
    assert head == "Sending slack notification"
    assert literal.class_name == "Rr"
    assert literal.value == {"a": 1}
    assert literal.trailing == "arn:aws:sns:us-east-1:1:topic"
    head, literal = find_literal("<ref *1> Node { self: [Circular *1] }")
    assert (head, literal.class_name, literal.value) == ("", "Node", {"self": "[Circular *1]"})


def test_text_without_object():
    assert find_literal("SubscriptionBalanceUpdated event published") == (
        "SubscriptionBalanceUpdated event published",
        None,
    )


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("{ a: 1, b: { c: 2 }", "not closed"),
        ("{ a: 'unterminated }", "unterminated string"),
        ("{ a: [ 1, 2 } ]", "unbalanced brackets"),
        ("{ a: 1, b: }", "malformed"),
        ("plain", "no object literal"),
    ],
)
def test_malformed_literals_raise_literal_error(text, reason):
    with pytest.raises(LiteralError, match=reason):
        parse_literal(text)


def test_deep_nesting_is_refused_without_recursion():
    with pytest.raises(LiteralError, match="deeper"):
        parse_literal("{ a: " * (MAX_DEPTH + 5) + "1" + " }" * (MAX_DEPTH + 5))
    nested = value("[" * 50 + "]" * 50)
    for _ in range(49):
        (nested,) = nested
    assert nested == []


def test_a_string_that_looks_like_the_placeholder_marker_stays_a_string():
    # Found by Hypothesis: placeholders are marked with a prefix while chompjs reads the literal; a
    # string that holds that prefix must not be taken for one.
    marker = "__calo_literal__:"
    assert value(f"{{ A: null, A0: [ '{marker}', [Object] ] }}") == {
        "A": None,
        "A0": [marker, Placeholder("[Object]")],
    }
    assert value(f"[ '{marker}[Array]', [Array], '_{marker}' ]") == [
        f"{marker}[Array]",
        Placeholder("[Array]"),
        f"_{marker}",
    ]


# -- property: what Node prints, the parser reads back ----------------------------------------------

_keys = st.one_of(
    st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,10}", fullmatch=True),
    st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=8),
)
_decimals = st.decimals(
    allow_nan=False, allow_infinity=False, places=6, min_value=-(10**9), max_value=10**9
)
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**15), max_value=10**15),
    _decimals.map(lambda number: JsNumber(format(number.normalize(), "f"))),
    st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=30),
    st.sampled_from([Placeholder("[Object]"), Placeholder("[Array]"), UNDEFINED]),
)
_values = st.recursive(
    _scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=6),
        st.dictionaries(_keys, children, max_size=6),
    ),
    max_leaves=30,
)


def _expected(item):
    if isinstance(item, JsNumber):
        number = Decimal(item)
        return int(number) if "." not in item and "e" not in item.lower() else number
    if isinstance(item, dict):
        return {key: _expected(child) for key, child in item.items()}
    if isinstance(item, list):
        return [_expected(child) for child in item]
    return item


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(_keys, _values, max_size=6))
def test_round_trip_of_node_printed_objects(obj):
    printed = inspect(obj)
    head, literal = find_literal(f"Start syncing the balance {printed} trailing words")
    assert head == "Start syncing the balance"
    assert literal.trailing == "trailing words"
    assert literal.value == _expected(obj)
