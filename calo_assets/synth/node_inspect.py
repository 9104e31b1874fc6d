"""Print Python values the way Node's ``util.inspect`` (``console.log``) prints JavaScript objects.

Used by the synthetic log generator and by the parser's property tests. It follows Node's defaults:
two-space indentation, single-quoted strings (double or backtick quotes when that avoids escapes),
identifier keys unquoted, and an object on one line when its entries fit in 80 columns (Node's
``breakLength``), otherwise one entry per line. Arrays longer than six items are not grouped the way
Node groups them; the generator does not print such arrays.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal
from typing import Any

from calo_assets.logs.inspect_literal import UNDEFINED, Placeholder

BREAK_LENGTH = 80
_IDENTIFIER = re.compile(r"[A-Za-z_$][\w$]*")
_ESCAPES = {"\n": "\\n", "\t": "\\t", "\r": "\\r", "\b": "\\b", "\f": "\\f", "\\": "\\\\"}


class JsNumber(str):
    """A number to print exactly as given (e.g. ``'60.181000000000004'``)."""

    __slots__ = ()


def js_number(value: float | int) -> JsNumber:
    """Text of a JavaScript number: integers without ``.0``, else the shortest round-trip digits."""
    if isinstance(value, int) and not isinstance(value, bool):
        return JsNumber(str(value))
    if math.isnan(value):
        return JsNumber("NaN")
    if math.isinf(value):
        return JsNumber("Infinity" if value > 0 else "-Infinity")
    if value == int(value) and abs(value) < 1e21:
        return JsNumber(str(int(value)) if value or math.copysign(1, value) > 0 else "-0")
    text = repr(value)
    if "e" in text:
        mantissa, exponent = text.split("e")
        exponent_value = int(exponent)
        text = f"{mantissa}e{'+' if exponent_value > 0 else '-'}{abs(exponent_value)}"
    return JsNumber(text)


def quote(text: str) -> str:
    """A JavaScript string literal as Node prints it."""
    if "'" not in text:
        mark = "'"
    elif '"' not in text:
        mark = '"'
    elif "`" not in text and "${" not in text:
        mark = "`"
    else:
        mark = "'"
    out = []
    for char in text:
        if char == mark:
            out.append("\\" + char)
        elif char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\x{ord(char):02X}")
        else:
            out.append(char)
    return mark + "".join(out) + mark


def inspect(value: Any, indentation: int = 0) -> str:
    """Format ``value`` as Node's ``util.inspect`` would (dict = object, list = array)."""
    if value is None:
        return "null"
    if value is UNDEFINED:
        return "undefined"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, JsNumber | Placeholder):
        return str(value)
    if isinstance(value, str):
        return quote(value)
    if isinstance(value, int | float):
        return js_number(value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        entries = [f"{_key(key)}: {inspect(item, indentation + 2)}" for key, item in value.items()]
        return _reduce(entries, "{", "}", indentation)
    if isinstance(value, list | tuple):
        entries = [inspect(item, indentation + 2) for item in value]
        return _reduce(entries, "[", "]", indentation)
    raise TypeError(f"cannot print {type(value).__name__} as a JavaScript value")


def _key(key: str) -> str:
    return key if _IDENTIFIER.fullmatch(key) else quote(key)


def _reduce(entries: list[str], open_: str, close: str, indentation: int) -> str:
    if not entries:
        return open_ + close
    start = len(entries) + indentation + len(open_) + 10
    total = sum(len(entry) for entry in entries) + len(entries)
    if total + start <= BREAK_LENGTH and not any("\n" in entry for entry in entries):
        return f"{open_} {', '.join(entries)} {close}"
    pad = " " * (indentation + 2)
    return f"{open_}\n{pad}" + f",\n{pad}".join(entries) + f"\n{' ' * indentation}{close}"
