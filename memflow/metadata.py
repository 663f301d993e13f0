"""Document metadata as the store keeps it: a JSON object.

Every document's metadata is stored as JSON, so values are strings, numbers, booleans, None, lists and
objects; dates and times become their ISO strings (the form where-filters compare). What a caller gives
(``Memory.add``) is checked strictly: a value JSON cannot hold is a :class:`RecordError` naming it. What a
file carries (front matter, a PDF's info dictionary) is taken leniently: such a value is left out, so an odd
field never costs the file.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from typing import Any

from memflow.errors import RecordError

__all__ = ["json_metadata", "lenient_metadata"]


def _value(value: Any, where: str) -> Any:
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise RecordError(f"{where}: {value!r} cannot be stored (metadata must be JSON; NaN and infinity are not)")
        return value
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, Mapping):
        return json_metadata(value, where=where)
    if isinstance(value, list | tuple):
        return [_value(item, f"{where}[{n}]") for n, item in enumerate(value)]
    raise RecordError(
        f"{where}: a {type(value).__name__} cannot be stored (metadata values must be JSON: str, number, bool, "
        "None, list, dict, or a date)"
    )


def json_metadata(value: Any, *, where: str = "metadata") -> dict[str, Any]:
    """``value`` as stored metadata; anything JSON cannot hold raises RecordError naming ``where``."""
    if not isinstance(value, Mapping):
        raise RecordError(f"{where} must be a dict of metadata, got {type(value).__name__}")
    checked: dict[str, Any] = {}
    for key, item in value.items():
        if not isinstance(key, str):
            raise RecordError(f"{where}: key {key!r} is a {type(key).__name__}; metadata keys must be strings")
        checked[key] = _value(item, f"{where}[{key!r}]")
    return checked


def lenient_metadata(value: Mapping[Any, Any]) -> dict[str, Any]:
    """``value`` as stored metadata, leaving out each field JSON cannot hold (non-string keys included)."""
    kept: dict[str, Any] = {}
    for key, item in value.items():
        if not isinstance(key, str):
            continue
        try:
            kept[key] = _value(item, key)
        except RecordError:
            if isinstance(item, Mapping):
                kept[key] = lenient_metadata(item)
    return kept
