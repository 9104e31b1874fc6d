"""Masking of personal data (e-mail addresses, phone numbers, names) in text taken from logs."""

from __future__ import annotations

import re

MASK = "***"

# A value of a key that names a person or a contact (``userName``, ``email``, ``phoneNumber``, ``actor``,
# ...). Quotes may carry any number of backslashes: JSON inside a string inside JSON (SQS bodies,
# gift-card metadata) is escaped once per level. The match starts at the key's last word (``Name`` of
# ``userName``): what precedes it is kept as it is either way, and a search that tried every letter of
# every word as the start of a key cost six times as much.
_PERSONAL_KEY = re.compile(
    r"""(?P<key>(?:[Nn]ame|[Ee]mail|[Pp]hone(?:Number)?|actor|sender|receiver|recipient)"""
    r"""(?:\\*["'])?\s*[:=]\s*)(?P<quote>\\*["'`])(?P<value>(?:\\.|.)*?)(?P=quote)""",
    re.DOTALL,
)
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
_PHONE = re.compile(r"(?<![\w.])\+\d[\d \-]{6,16}\d(?!\d)")


def _may_hold_personal_data(text: str) -> bool:
    # Plain substring tests are several times faster than one regex search over the text.
    return (
        "@" in text
        or "+" in text
        or "ame" in text
        or "hone" in text
        or "actor" in text
        or "sender" in text
        or "recipient" in text
        or "receiver" in text
    )


def _mask_value(match: re.Match[str]) -> str:
    return f"{match.group('key')}{match.group('quote')}{MASK}{match.group('quote')}"


def mask_text(text: str) -> str:
    """Replace e-mail addresses, international phone numbers and values of name/contact keys."""
    if not text or not _may_hold_personal_data(text):
        return text
    text = _PERSONAL_KEY.sub(_mask_value, text)
    if "@" in text:
        text = _EMAIL.sub(MASK, text)
    if "+" in text:
        text = _PHONE.sub(MASK, text)
    return text
