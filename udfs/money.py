"""Money as CLDR's English locale writes it: ``$1,234.50``, ``€9.99``, ``¥1,235``, ``CHF 12.00``.

Formatted here by hand because Babel is not a dependency and an email needs only this much of it: a symbol with
its spacing, thousands separators, and the currency's ISO 4217 minor units. Amounts are rounded half up (``0.005``
shows as ``0.01``), as a shopper would round, not to even.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

__all__ = ["format_money", "minor_units", "round_half_up"]

# ISO 4217 code -> (symbol with its spacing, minor units), as CLDR's English locale writes them.
_CURRENCIES: dict[str, tuple[str, int]] = {
    "USD": ("$", 2),
    "EUR": ("€", 2),
    "GBP": ("£", 2),
    "JPY": ("¥", 0),
    "KRW": ("₩", 0),
    "CAD": ("CA$", 2),
    "AUD": ("A$", 2),
    "NZD": ("NZ$", 2),
    "HKD": ("HK$", 2),
    "MXN": ("MX$", 2),
    "BRL": ("R$", 2),
    "CNY": ("CN¥", 2),
    "INR": ("₹", 2),
    "CHF": ("CHF ", 2),
    "SEK": ("SEK ", 2),
    "NOK": ("NOK ", 2),
    "DKK": ("DKK ", 2),
    "PLN": ("PLN ", 2),
    "SGD": ("SGD ", 2),
    "ZAR": ("ZAR ", 2),
}


def format_money(amount: float | Decimal, currency: str) -> str:
    """``$1,234.50``, ``€9.99``, ``¥1,235``, ``CHF 12.00``; unknown codes as ``XYZ 1.00`` with 2 decimals.

    :param amount: in major units (dollars, not cents); rounded half up to the currency's minor units.
    """
    symbol, digits = _CURRENCIES.get(currency, (f"{currency} ", 2))
    value = round_half_up(Decimal(str(amount)) if not isinstance(amount, Decimal) else amount, digits)
    sign_ = "-" if value < 0 else ""
    return f"{sign_}{symbol}{abs(value):,.{digits}f}"


def minor_units(currency: str) -> int:
    """The digits after the point that ``currency`` shows (0 for ``JPY``); 2 for a code not in the table."""
    return _CURRENCIES.get(currency, ("", 2))[1]


def round_half_up(value: Decimal, digits: int) -> Decimal:
    """``value`` rounded half up to ``digits`` decimals (``Decimal("0.005")`` -> ``0.01``)."""
    return value.quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP)
