"""Parse object literals printed by Node's ``util.inspect`` (what ``console.log`` writes for objects).

The grammar itself is parsed by ``chompjs`` (C code, fast). This module adds what chompjs does not do:

- it finds where the literal ends, so text after it is kept (chompjs drops it silently) and an object
  cut off before its closing brace is an error, not a guess;
- ``undefined``, ``NaN``, ``Infinity`` and the placeholders ``[Object]``, ``[Array]``, ``[Circular *1]``,
  ``[Function: f]``, ``... 3 more items`` keep their meaning (chompjs turns them into strings or lists);
- a class-name prefix (``Rr {``, ``<ref *1> {``) is reported instead of dropped;
- numbers with a fraction or exponent become ``Decimal`` built from the logged text (never a float);
- nesting deeper than ``MAX_DEPTH`` is refused before it reaches the C parser.

Ingest stores a literal as JSON (``to_json``). ``find_literal_json`` gets that JSON for the common
case from the compiled ``_native`` module in one pass, without building Python objects; the
path above serves the rest, and property tests hold the two to the same output.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any, NamedTuple

import chompjs
import orjson

from calo_assets.logs._native import literal_json as _compiled_literal_json

MAX_DEPTH = 200

# One decoder, built once: ``json.loads`` with keyword arguments builds a new one per call. Logged
# JSON may hold raw control characters inside strings: they are kept as text (``strict=False``).
_DECODER = json.JSONDecoder(parse_float=Decimal, parse_constant=Decimal, strict=False)

# Strings as "unrolled loops" (runs of plain characters, then one escape): far faster than (a|b)*.
_STRING = r"""'[^'\\\n]*+(?:\\.[^'\\\n]*+)*+'|"[^"\\\n]*+(?:\\.[^"\\\n]*+)*+"|`[^`\\]*+(?:\\.[^`\\]*+)*+`"""
_TOKEN = re.compile(
    _STRING
    + r"""
    | (?P<placeholder>\[(?:Object|Array|Circular\ \*\d+|Function[^\]\n]*|class[^\]\n]*
                          |Getter|Setter|Getter/Setter|Symbol[^\]\n]*)\])
    | (?P<more>\.\.\.\ \d+\ more\ items?)
    | (?P<key>(?<![\w$.])(?:true|false|null|undefined|NaN|Infinity)(?=\s*:))
    | (?P<special>(?<![\w$.])(?:undefined|NaN|-?Infinity)(?![\w$]))
    | (?P<open>[{\[])
    | (?P<close>[}\]])
    | (?P<quote>['"`])
    """,
    re.VERBOSE | re.DOTALL,
)
_HEX_ESCAPE = re.compile(r"(?<!\\)((?:\\\\)*)\\x([0-9A-Fa-f]{2})")
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")
_STRING_TOKEN = re.compile(_STRING, re.DOTALL)
_ESCAPE_OR_CONTROL = re.compile(r"\\[\s\S]|[\x00-\x1f]")
_KEYWORD_KEY = re.compile(r"(?:true|false|null)\s*:")
_PLACEHOLDER_START = re.compile(r"\[[A-Za-z]")
_CLASS_NAME = re.compile(r"[A-Z][\w$]*(?:\(\d+\))?")
_SENTINEL = "__calo_literal__:"
_PAIRS = {"{": "}", "[": "]"}


class LiteralError(ValueError):
    """The text is not a complete, well-formed object literal."""


class Placeholder(str):
    """A value Node abbreviated, such as ``[Object]`` or ``... 5 more items``; the text is kept."""

    __slots__ = ()


class _Undefined:
    __slots__ = ()

    def __repr__(self) -> str:
        return "UNDEFINED"

    def __bool__(self) -> bool:
        return False


UNDEFINED: Any = _Undefined()
"""JavaScript's ``undefined``, distinct from ``None`` (``null``)."""

_SPECIAL_VALUES: dict[str, Any] = {
    "undefined": UNDEFINED,
    "NaN": Decimal("NaN"),
    "Infinity": Decimal("Infinity"),
    "-Infinity": Decimal("-Infinity"),
}


class Literal(NamedTuple):
    """A parsed literal: its value, the class name printed before it, and the text after it."""

    value: Any
    class_name: str | None = None
    trailing: str = ""


class LiteralJson(NamedTuple):
    """A literal as stored: its compact JSON (``to_json``), class name and the text after it.

    ``compiled``: the JSON came from the compiled pass, whose integers have at most 18 digits (any
    64-bit JSON reader, such as orjson, reads them exactly).
    """

    json: str
    class_name: str | None
    trailing: str
    compiled: bool = False


def find_literal(message: str) -> tuple[str, Literal | None]:
    """Split a log message into its leading text and the object literal that follows, if any.

    Raises ``LiteralError`` when an object starts but is not well formed.
    """
    head, start, class_name = _split_head(message)
    if start < 0:
        return message, None
    literal = parse_literal(message[start:])
    return head, literal._replace(class_name=class_name) if class_name else literal


def find_literal_json(message: str) -> tuple[str, LiteralJson | None]:
    """``find_literal``, with the value as the compact JSON of ``to_json``.

    The common case is read by the compiled ``literal_json`` in one pass; anything it does not know
    takes ``parse_literal``, so the result is the same either way.
    """
    head, start, class_name = _split_head(message)
    if start < 0:
        return message, None
    text = message[start:]
    fast = _compiled_literal_json(text)
    if fast is not None:
        end, json_text = fast
        return head, LiteralJson(json_text, class_name, text[end:].strip(), compiled=True)
    literal = parse_literal(text)
    return head, LiteralJson(to_json(literal.value), class_name, literal.trailing)


def _split_head(message: str) -> tuple[str, int, str | None]:
    """The text before a literal, where the literal starts (-1: none) and its class-name prefix."""
    start = message.find("{")
    if message.startswith("["):
        start = 0
    if start < 0:
        return message, -1, None
    head = message[:start].rstrip()
    class_name = None
    before, _, word = head.rpartition(" ")
    if _CLASS_NAME.fullmatch(word):
        class_name, head = word, before.rstrip()
    if head.endswith(">"):
        before, ref, _ = head.rpartition("<ref *")
        head = before.rstrip() if ref else head
    return head, start, class_name


def parse_literal(text: str) -> Literal:
    """Parse one literal that starts at ``text[0]`` (``{`` or ``[``); keep the trailing text."""
    if not text or text[0] not in _PAIRS:
        raise LiteralError("no object literal: text does not start with '{' or '['")
    sentinel = _sentinel_for(text)
    end, replacements = _scan(text, sentinel)
    body = text[:end]
    if replacements:
        body = _substitute(body, replacements)
    if _CONTROL.search(body):  # raw control characters in strings: chompjs (C strings) refuses NUL
        body = _STRING_TOKEN.sub(_escape_controls, body)
    if "\\x" in body:  # Node escapes control characters as \xHH, which chompjs (JSON) does not know
        body = _HEX_ESCAPE.sub(r"\1\\u00\2", body)
    try:
        value = chompjs.parse_js_object(body, loader=_DECODER.decode)
    except (ValueError, RecursionError) as exc:
        raise LiteralError(f"malformed object literal: {exc}") from None
    if replacements:
        value = _restore(value, sentinel)
    return Literal(value=value, trailing=text[end:].strip())


def _escape_controls(string: re.Match[str]) -> str:
    """A quoted string with its raw control characters (escaped with a backslash or not) as
    ``\\u00XX`` escapes, which mean the same characters."""

    def escaped(match: re.Match[str]) -> str:
        text = match.group()
        character = text[-1]
        if len(text) == 2 and character >= " ":
            return text  # an ordinary escape
        return f"\\u{ord(character):04x}"

    return _ESCAPE_OR_CONTROL.sub(escaped, string.group())


def parse_json(text: str) -> Any:
    """Parse JSON keeping fractional numbers exact (``Decimal``); raise ``LiteralError`` if invalid."""
    try:
        return _DECODER.decode(text)
    except (ValueError, RecursionError) as exc:
        raise LiteralError(f"malformed JSON: {exc}") from None


def to_json(value: Any) -> str:
    """Compact JSON of a parsed value as the warehouse stores it: fractional numbers as strings of
    their exact digits, ``undefined`` as null, placeholders as their text, keys in order."""
    try:
        return orjson.dumps(value, default=_json_default).decode()
    except (orjson.JSONEncodeError, TypeError):  # integers beyond 64 bits, lone surrogates
        return _ENCODER.encode(value)


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if value is UNDEFINED:
        return None
    return str(value)


_ENCODER = json.JSONEncoder(default=_json_default, ensure_ascii=False, separators=(",", ":"))


def _sentinel_for(text: str) -> str:
    """The prefix that marks substituted tokens: one that no string of ``text`` holds (Node prints
    such a string as it is, none of its characters being escaped)."""
    sentinel = _SENTINEL
    while sentinel in text:
        sentinel = "_" + sentinel
    return sentinel


def _scan(text: str, sentinel: str) -> tuple[int, list[tuple[int, int, str]]]:
    """Find the end of the literal starting at 0 and the special tokens to substitute."""
    end = _fast_end(text)
    return (end, []) if end is not None else _full_scan(text, sentinel)


def _fast_end(text: str) -> int | None:
    """End of the literal for the common case, in one C-speed regex match; ``None`` sends it to the full scan.

    ``_BALANCED`` matches a literal nested at most ``_FAST_DEPTH`` levels, strings taken whole. Anything
    unusual (deeper nesting, a stray quote, a special token) returns ``None`` so the full scan can
    handle it or explain the error.
    """
    match = _BALANCED.match(text)
    if match is None:
        return None
    end = match.end()
    return None if _unusual(text[:end]) else end


def _unusual(body: str) -> bool:
    """Whether a literal needs the full scan for its special tokens (found in strings too: harmless)."""
    # Substring tests first: a regex alternation over the whole text is several times slower.
    if "..." in body or "undefined" in body or "NaN" in body or "Infinity" in body:
        return True
    for keyword in ("true", "false", "null"):  # a keyword used as a key: ``{ true: 1 }``
        position = body.find(keyword)
        while position >= 0:
            if _KEYWORD_KEY.match(body, position):
                return True
            position = body.find(keyword, position + 1)
    return "[" in body and _PLACEHOLDER_START.search(body) is not None


def _balanced_pattern(depth: int) -> re.Pattern[str]:
    """A regex matching a bracketed literal nested up to ``depth`` levels (possessive: no backtracking)."""
    atoms = rf"""[^{{}}\[\]'"`]++|{_STRING}"""
    literal = rf"\{{(?:{atoms})*+\}}|\[(?:{atoms})*+\]"
    for _ in range(depth - 1):
        inner = f"(?:{atoms}|{literal})*+"
        literal = rf"\{{{inner}\}}|\[{inner}\]"
    return re.compile(literal, re.DOTALL)


_FAST_DEPTH = 5
_BALANCED = _balanced_pattern(_FAST_DEPTH)


def _full_scan(text: str, sentinel: str) -> tuple[int, list[tuple[int, int, str]]]:
    stack: list[str] = []
    replacements: list[tuple[int, int, str]] = []
    for match in _TOKEN.finditer(text):
        kind = match.lastgroup
        if kind is None:  # a complete string
            continue
        if kind == "open":
            if len(stack) >= MAX_DEPTH:
                raise LiteralError(f"object nested deeper than {MAX_DEPTH} levels")
            stack.append(_PAIRS[match.group()])
        elif kind == "close":
            if not stack:
                raise LiteralError("closing bracket without an opening one")
            expected = stack.pop()
            if match.group() != expected:
                raise LiteralError(
                    f"unbalanced brackets: expected {expected!r} at offset {match.start()}"
                )
            if not stack:
                return match.end(), replacements
        elif kind == "quote":
            raise LiteralError(f"unterminated string starting at offset {match.start()}")
        elif kind == "key":  # a keyword used as a key (``{ false: 1 }``) is quoted for chompjs
            replacements.append((match.start(), match.end(), json.dumps(match.group())))
        elif stack:
            replacements.append((match.start(), match.end(), json.dumps(sentinel + match.group())))
    raise LiteralError(
        f"object literal not closed: {len(stack)} bracket(s) still open at end of text"
    )


def _substitute(body: str, replacements: list[tuple[int, int, str]]) -> str:
    parts: list[str] = []
    position = 0
    for start, end, replacement in replacements:
        parts.append(body[position:start])
        parts.append(replacement)
        position = end
    parts.append(body[position:])
    return "".join(parts)


def _restore(value: Any, sentinel: str) -> Any:
    if isinstance(value, str):
        if not value.startswith(sentinel):
            return value
        token = value[len(sentinel) :]
        return _SPECIAL_VALUES[token] if token in _SPECIAL_VALUES else Placeholder(token)
    if isinstance(value, dict):
        return {key: _restore(item, sentinel) for key, item in value.items()}
    if isinstance(value, list):
        return [_restore(item, sentinel) for item in value]
    return value
