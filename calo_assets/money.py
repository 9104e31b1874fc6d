"""Money rules: exact decimals, the comparison tolerance, and each currency's minor unit."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation, localcontext
from typing import Any

import pyarrow as pa

TOLERANCE = Decimal("0.0005")
MINOR_UNITS = {"BHD": 3, "KWD": 3, "SAR": 2, "AED": 2, "QAR": 2}
KNOWN_CURRENCIES = frozenset(MINOR_UNITS)
# Up to 20 integer digits and 18 decimals: every amount the source system prints (17 significant digits).
MONEY_TYPE = pa.decimal128(38, 18)
_QUANTUM = Decimal(1).scaleb(-MONEY_TYPE.scale)
_INTEGER_DIGITS = MONEY_TYPE.precision - MONEY_TYPE.scale
_LIMIT = Decimal(10) ** _INTEGER_DIGITS
_INT_LIMIT = 10**_INTEGER_DIGITS
# Plain decimal text that fits ``MONEY_TYPE``: what ``to_money`` accepts, decided without a Decimal.
_PLAIN_MONEY = re.compile(rf"-?\d{{1,{_INTEGER_DIGITS}}}(?:\.\d{{1,{MONEY_TYPE.scale}}})?")


class MoneyError(ValueError):
    """A logged amount that is not a finite number the warehouse can hold exactly."""


def to_money(value: Any) -> Decimal | None:
    """An exact decimal from a logged number (int, Decimal or numeric text); ``None`` when absent.

    Raises ``MoneyError`` for text that is not a number, infinities, NaN, and values the warehouse type
    cannot hold without rounding.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise MoneyError(f"not a number: {value!r}")
    if isinstance(value, Decimal | int):
        number = Decimal(value)
    else:
        try:
            number = Decimal(str(value).strip())
        except (InvalidOperation, ValueError):
            raise MoneyError(f"not a number: {str(value)[:40]!r}") from None
    if not number.is_finite():
        raise MoneyError(f"not a finite number: {value}")
    if number.as_tuple().exponent >= -MONEY_TYPE.scale and number.adjusted() < _INTEGER_DIGITS:
        return number  # the common case, decided without arithmetic
    with localcontext() as exact:
        exact.prec = 80
        # A huge exponent (1E1000000) cannot fit: decided before quantize, which would overflow.
        fits = (
            number.adjusted() < _INTEGER_DIGITS
            and abs(number) < _LIMIT
            and number == number.quantize(_QUANTUM, rounding="ROUND_DOWN")
        )
    if not fits:
        raise MoneyError(f"{value} does not fit {MONEY_TYPE} exactly")
    return number


def check_money(value: Any) -> None:
    """Raise ``MoneyError`` where ``to_money`` would; plain decimal text and integers are checked fast."""
    kind = type(value)
    if kind is str and _PLAIN_MONEY.fullmatch(value):
        return
    if kind is int and -_INT_LIMIT < value < _INT_LIMIT:
        return
    to_money(value)


def minor_unit(currency: str | None) -> int:
    """Decimals to show for a currency (2 when the currency is unknown)."""
    return MINOR_UNITS.get(currency or "", 2)


def format_money(value: Decimal | float | None, currency: str | None) -> str:
    """``value`` rounded to the currency's minor unit, with thousands separators and the code."""
    if value is None:
        return ""
    return f"{value:,.{minor_unit(currency)}f} {currency or ''}".rstrip()


def plain_decimal(value: Decimal | int | None) -> str:
    """Exact decimal text without exponent or needless trailing zeros (``19430``, ``0``, ``1.5``)."""
    if value is None:
        return ""
    text = format(Decimal(value), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in {"", "-0"} else text
