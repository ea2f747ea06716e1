"""``json.dumps(value, indent=2, default=str)``, the same text, without the pure-Python encoder.

The standard library only uses its C encoder when there is no indentation; the plan documents are
indented, so each went through the generator-based Python encoder. :func:`dumps_indented` writes
the same bytes for the types plans are made of (dicts with string keys, lists, tuples, strings,
numbers, booleans, None, anything else through ``str``) with the C string escaper, and hands any
other shape (a non-string key) to :func:`json.dumps` itself.
"""

from __future__ import annotations

import json
import math
from json.encoder import encode_basestring_ascii
from typing import Any

__all__ = ["dumps_indented"]


class _Unsupported(Exception):
    """A value this writer does not spell like :func:`json.dumps`; the caller falls back to it."""


def _float(value: float) -> str:
    if math.isfinite(value):
        return float.__repr__(value)
    if value != value:
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


def _encode(value: Any, pad: str, depth: int) -> str:
    # The order of the checks is json's own: str before int (StrEnum), bool before int.
    if isinstance(value, str):
        return encode_basestring_ascii(value)
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return int.__repr__(value)
    if isinstance(value, float):
        return _float(value)
    if depth > 100:  # json.dumps reports circular references; leave those to it
        raise _Unsupported
    if isinstance(value, (list, tuple)):
        if not value:
            return "[]"
        inner = pad + "  "
        return "[" + inner + ("," + inner).join([_encode(item, inner, depth + 1) for item in value]) + pad + "]"
    if isinstance(value, dict):
        if not value:
            return "{}"
        inner = pad + "  "
        parts = []
        for key, item in value.items():
            if not isinstance(key, str):
                raise _Unsupported
            parts.append(encode_basestring_ascii(key) + ": " + _encode(item, inner, depth + 1))
        return "{" + inner + ("," + inner).join(parts) + pad + "}"
    return encode_basestring_ascii(str(value))  # default=str


def dumps_indented(value: Any) -> str:
    """Exactly ``json.dumps(value, indent=2, default=str)``."""
    try:
        return _encode(value, "\n", 0)
    except _Unsupported:
        return json.dumps(value, indent=2, default=str)
