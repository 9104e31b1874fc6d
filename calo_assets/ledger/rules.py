"""The domain rules of design.md that apply to one transaction or one discrepancy."""

from __future__ import annotations

from decimal import Decimal

CREDIT = "CREDIT"
DEBIT = "DEBIT"


def direction(
    logged_type: str | None, old_balance: Decimal | None, new_balance: Decimal | None
) -> tuple[str | None, bool]:
    """The transaction's direction and whether it was inferred.

    The logged ``type`` wins; without it, CREDIT when the balance did not go down, else DEBIT.
    """
    if logged_type:
        return logged_type.upper(), False
    if old_balance is None or new_balance is None:
        return None, True
    return (CREDIT if new_balance >= old_balance else DEBIT), True


def gap(subscription_balance: Decimal | None, payment_balance: Decimal | None) -> Decimal | None:
    """``subscription - payment``: positive means spendable money that was never paid."""
    if subscription_balance is None or payment_balance is None:
        return None
    return subscription_balance - payment_balance
