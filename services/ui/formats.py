"""Numbers, percentages, amounts, dates and plurals in the advisor's language, from the
CLDR data Babel ships (never hand-written separators): "10.2%" / "10,2 %",
"202,500" / "202 500", "€202,500" / "202 500 €", "4 Dec 2026, 20:35" / "4 déc. 2026, 20:35".

``lang`` is the dashboard's language code ("en" or "fr"); LOCALES maps it to the CLDR
locale whose conventions the advisor reads."""

from __future__ import annotations

import math
from datetime import datetime
from functools import cache
from typing import Final

from babel import Locale
from babel.dates import format_datetime
from babel.numbers import format_currency, format_decimal, format_percent

LOCALES: Final = {"en": "en_GB", "fr": "fr_FR"}
# The currency the amounts are in; the dashboard sets it from UISettings.currency.
CURRENCY = "EUR"


def locale(lang: str) -> str:
    return LOCALES.get(lang, LOCALES["en"])


@cache
def _locale(lang: str) -> Locale:
    return Locale.parse(locale(lang))


def _decimals(pattern: str, digits: int) -> str:
    """The locale's own pattern with ``digits`` fraction digits."""
    integer = pattern.replace("#,##0.00", "#,##0").replace("#,##0.0", "#,##0")
    return integer.replace("#,##0", "#,##0." + "0" * digits, 1) if digits else integer


def number(value: float, lang: str, digits: int = 0) -> str:
    """A plain number with the locale's grouping and decimal mark."""
    return str(
        format_decimal(value, "#,##0." + "0" * digits if digits else "#,##0", locale=locale(lang))
    )


def percent(value: float, lang: str, digits: int = 1) -> str:
    """A share (0.102) as a percentage: "10.2%" / "10,2 %"."""
    pattern = _decimals(_locale(lang).percent_formats[None].pattern, digits)
    return str(format_percent(value, pattern, locale=locale(lang)))


def points(value: float, lang: str, digits: int = 1, sign: bool = True) -> str:
    """Percentage points (a difference of two percentages), signed: "+1.2 pts"."""
    text = number(abs(value), lang, digits)
    rounded = round(abs(value), digits)
    mark = "" if not sign or rounded == 0 else ("+" if value > 0 else "\u2212")
    return f"{mark}{text}\u00a0pts"


def money(value: float, lang: str, currency: str | None = None) -> str:
    """An amount in whole units of the currency: "€202,500" / "202 500 €"."""
    pattern = _decimals(_locale(lang).currency_formats["standard"].pattern, 0)
    return str(
        format_currency(
            value, currency or CURRENCY, pattern, locale=locale(lang), currency_digits=False
        )
    )


def currency_symbol(lang: str, currency: str | None = None) -> str:
    from babel.numbers import get_currency_symbol

    return str(get_currency_symbol(currency or CURRENCY, locale=locale(lang)))


def when(moment: datetime, lang: str) -> str:
    """A date and time, medium length: "4 Dec 2026, 20:35"."""
    return str(format_datetime(moment, "medium", locale=locale(lang))).rsplit(":", 1)[0]


def plural(lang: str, count: float) -> str:
    """The CLDR plural category of ``count``: French says "1 a", "0 a" but "2 ont"."""
    return str(_locale(lang).plural_form(abs(count)))


def plain(value: float, lang: str) -> str:
    """A number as typed in a field: no grouping, the locale's decimal mark, at most two
    decimals, none when whole."""
    if math.isnan(value):
        return ""
    digits = 0 if value == round(value) else 2
    return str(
        format_decimal(
            round(value, digits), "0." + "#" * digits if digits else "0", locale=locale(lang)
        )
    )
