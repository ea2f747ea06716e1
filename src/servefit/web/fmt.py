"""Display formatting for the website: bytes, counts, speeds, money.

Bytes are integers everywhere inside servefit; they become GB (10^9 bytes) or GiB (2^30 bytes)
only here, and every string says which unit it uses. The same functions format the tables, the
prose and the FAQ, so a figure reads identically wherever it appears on a page.
"""

from __future__ import annotations

__all__ = [
    "GB",
    "GIB",
    "fmt_bool",
    "fmt_count",
    "fmt_gb",
    "fmt_gib",
    "fmt_money",
    "fmt_params",
    "fmt_seconds",
    "fmt_tok_s",
]

GB = 1000**3
GIB = 1024**3


def fmt_gb(nbytes: int | None) -> str:
    """``73590000000`` -> ``"73.59 GB"`` (decimal gigabytes, two decimals)."""
    if nbytes is None:
        return "—"
    return f"{nbytes / GB:,.2f} GB"


def fmt_gib(nbytes: int | None) -> str:
    """``2**30`` -> ``"1.00 GiB"`` (binary gibibytes, two decimals)."""
    if nbytes is None:
        return "—"
    return f"{nbytes / GIB:,.2f} GiB"


def fmt_count(n: int | None) -> str:
    """``262144`` -> ``"262,144"``."""
    if n is None:
        return "—"
    return f"{n:,}"


def fmt_params(n: int | None) -> str:
    """``123_610_000_000`` -> ``"123.6B"``; ``8_030_000_000`` -> ``"8.0B"``; millions below 1B."""
    if not n:
        return "—"
    if n >= 1_000_000_000:
        return f"{n / 1e9:,.1f}B"
    return f"{n / 1e6:,.0f}M"


def fmt_tok_s(value: float | None) -> str:
    """Tokens per second with a precision that suits the magnitude; ``"—"`` when unknown."""
    if value is None:
        return "—"
    if value >= 100:
        return f"{value:,.0f} tok/s"
    if value >= 10:
        return f"{value:.1f} tok/s"
    return f"{value:.2f} tok/s"


def fmt_seconds(value: float | None) -> str:
    """``0.4215`` -> ``"0.42 s"``; ``125.0`` -> ``"125 s"``."""
    if value is None:
        return "—"
    if value >= 100:
        return f"{value:,.0f} s"
    return f"{value:.2f} s"


def fmt_money(value: float | None, currency: str) -> str:
    """``1.234, "EUR"`` -> ``"1.23 EUR"``; small amounts keep three significant digits."""
    if value is None:
        return "—"
    unit = f" {currency}" if currency else ""
    if value >= 100:
        return f"{value:,.0f}{unit}"
    if value >= 0.1:
        return f"{value:.2f}{unit}"
    return f"{value:.3g}{unit}"


def fmt_bool(value: bool) -> str:
    return "Yes" if value else "No"
