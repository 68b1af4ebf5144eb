"""Range checks for config fields: one message format naming the key, the value and what is allowed."""
from __future__ import annotations

import math


def check_range(key: str, value: float | None, low: float, high: float = math.inf, *, open_low: bool = False,
                open_high: bool = False, note: str = "") -> None:
    """Raise ValueError unless low <= value <= high (strict where open); None (a setting that is off) passes.

    NaN fails every comparison and an infinite value is never allowed, so neither slips through a range."""
    if value is None:
        return
    above = low < value if open_low else low <= value
    below = value < high if open_high else value <= high
    if above and below and math.isfinite(value):
        return
    raise ValueError(f"{key} = {value!r} is out of range; allowed: {describe(low, high, open_low, open_high)}"
                     + (f" ({note})" if note else ""))


def at_least(section: object, low: int, *keys: str) -> None:
    """check_range(key, value, low) for each named field of a config section."""
    for key in keys:
        check_range(key, getattr(section, key), low)


def positive(section: object, *keys: str) -> None:
    """Each named field of a config section is a finite number > 0 (or None)."""
    for key in keys:
        check_range(key, getattr(section, key), 0, open_low=True)


def describe(low: float, high: float, open_low: bool, open_high: bool) -> str:
    """'>= 1', '> 0', '[0, 1)': the allowed range as the error states it."""
    if math.isinf(high):
        return f"{'>' if open_low else '>='} {number(low)}"
    return f"{'(' if open_low else '['}{number(low)}, {number(high)}{')' if open_high else ']'}"


def number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"
