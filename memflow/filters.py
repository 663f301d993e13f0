"""Where-filters: a small Mongo/Chroma-style language over a document's metadata.

A filter is a mapping. ``{"user": "u1"}`` matches documents whose ``user`` field equals ``"u1"``;
``{"date": {"$gte": "2024-01-01"}}`` compares; several fields in one mapping must all match;
``{"$and": [...]}`` / ``{"$or": [...]}`` combine filters. Operators: ``$eq $ne $in $nin $gt $gte $lt $lte``.

Fields are looked up in the document's metadata, except ``uri`` and ``collection``, which name the
document's identity and collection. A comparison between values of different kinds (a number and a
string) does not match rather than fail, so one odd record cannot break a search; an unknown operator or a
malformed filter is refused with a :class:`FilterError` that names it.

The CLI form is a list of ``FIELD OP VALUE`` strings (``user=u1``, ``date>=2024-01-01``, ``year!=2020``),
all of which must match; a string starting with ``{`` is read as the JSON form.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from memflow.errors import MemflowError

__all__ = ["FilterError", "Where", "parse_where", "parse_cli_where", "cli_value", "RESERVED_FIELDS", "OPERATORS"]

RESERVED_FIELDS = ("uri", "collection")
OPERATORS = ("$eq", "$ne", "$in", "$nin", "$gt", "$gte", "$lt", "$lte")
_COMBINATORS = ("$and", "$or")
_MISSING = object()


class FilterError(MemflowError, ValueError):
    """A where-filter is malformed: unknown operator, wrong operand, bad CLI expression."""


def _comparable(value: Any) -> Any:
    """Dates and datetimes compare as their ISO strings, the form metadata is stored in."""
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return value


def _same_kind(left: Any, right: Any) -> bool:
    numbers = (int, float)
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool)
    if isinstance(left, numbers) and isinstance(right, numbers):
        return True
    return type(left) is type(right)


def _equal(left: Any, right: Any) -> bool:
    if isinstance(left, list):
        # A list-valued field (tags: [a, b]) equals a value it contains, as in MongoDB.
        return any(_equal(item, right) for item in left)
    return _same_kind(left, right) and left == right


def _ordered(compare: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    def test(left: Any, right: Any) -> bool:
        if left is _MISSING or left is None or not _same_kind(left, right):
            return False
        return bool(compare(left, right))

    return test


_TESTS: dict[str, Callable[[Any, Any], bool]] = {
    "$eq": lambda left, right: left is not _MISSING and _equal(left, right),
    "$ne": lambda left, right: left is _MISSING or not _equal(left, right),
    "$in": lambda left, right: left is not _MISSING and any(_equal(left, item) for item in right),
    "$nin": lambda left, right: left is _MISSING or not any(_equal(left, item) for item in right),
    "$gt": _ordered(lambda left, right: left > right),
    "$gte": _ordered(lambda left, right: left >= right),
    "$lt": _ordered(lambda left, right: left < right),
    "$lte": _ordered(lambda left, right: left <= right),
}


@dataclass(frozen=True, slots=True)
class _Condition:
    field: str
    operator: str
    operand: Any

    def matches(self, record: Mapping[str, Any]) -> bool:
        value = _comparable(record.get(self.field, _MISSING))
        return _TESTS[self.operator](value, self.operand)


@dataclass(frozen=True, slots=True)
class Where:
    """A validated filter. ``matches(record)`` tests one document's fields (its metadata plus ``uri`` and
    ``collection``); ``spec`` is the normalized mapping it was parsed from (JSON-serializable)."""

    combinator: str
    terms: tuple[_Condition | Where, ...]
    spec: Mapping[str, Any]

    def matches(self, record: Mapping[str, Any]) -> bool:
        if self.combinator == "$or":
            return any(term.matches(record) for term in self.terms)
        return all(term.matches(record) for term in self.terms)

    def fields(self) -> set[str]:
        """The field names the filter reads."""
        names: set[str] = set()
        for term in self.terms:
            names |= term.fields() if isinstance(term, Where) else {term.field}
        return names

    def select(self, records: Iterable[tuple[Any, Mapping[str, Any]]]) -> list[Any]:
        """The keys of the ``(key, record)`` pairs that match, in order."""
        return [key for key, record in records if self.matches(record)]


def _operand(field: str, operator: str, operand: Any) -> Any:
    if operator in ("$in", "$nin"):
        if not isinstance(operand, list | tuple):
            raise FilterError(f"where-filter: {operator} on '{field}' needs a list, got {operand!r}")
        return tuple(_comparable(item) for item in operand)
    if isinstance(operand, Mapping | list | tuple):
        raise FilterError(f"where-filter: {operator} on '{field}' needs a single value, got {operand!r}")
    return _comparable(operand)


def _parse(spec: Any, combinator: str = "$and") -> Where:
    if not isinstance(spec, Mapping):
        raise FilterError(f"where-filter: expected a mapping of field to condition, got {spec!r}")
    terms: list[_Condition | Where] = []
    for key, condition in spec.items():
        if not isinstance(key, str) or not key:
            raise FilterError(f"where-filter: field names are non-empty strings, got {key!r}")
        if key in _COMBINATORS:
            if not isinstance(condition, list | tuple) or not condition:
                raise FilterError(f"where-filter: {key} needs a non-empty list of filters")
            terms.append(Where(key, tuple(_parse(part) for part in condition), {key: list(condition)}))
        elif key.startswith("$"):
            raise FilterError(_unknown(key, _COMBINATORS, "at the top level"))
        elif isinstance(condition, Mapping):
            if not condition:
                raise FilterError(f"where-filter: empty condition for '{key}'")
            for operator, operand in condition.items():
                if operator not in OPERATORS:
                    raise FilterError(_unknown(str(operator), OPERATORS, f"on '{key}'"))
                terms.append(_Condition(key, operator, _operand(key, operator, operand)))
        else:
            terms.append(_Condition(key, "$eq", _operand(key, "$eq", condition)))
    if not terms:
        raise FilterError("where-filter: empty filter")
    return Where(combinator, tuple(terms), dict(spec))


def _unknown(operator: str, known: Sequence[str], where: str) -> str:
    return f"where-filter: unknown operator '{operator}' {where}; expected one of {', '.join(known)}"


def parse_where(spec: Mapping[str, Any] | Where | None) -> Where | None:
    """Validate a filter mapping (or pass a parsed one through); None means no filter."""
    if spec is None or isinstance(spec, Where):
        return spec
    return _parse(spec)


_CLI_EXPRESSION = re.compile(r"^\s*([^=!<>\s]+)\s*(!=|>=|<=|=|>|<)\s*(.*?)\s*$", re.DOTALL)
_CLI_OPERATORS = {"=": "$eq", "!=": "$ne", ">=": "$gte", "<=": "$lte", ">": "$gt", "<": "$lt"}


def cli_value(text: str) -> Any:
    """``3`` and ``2.5`` are numbers, ``true``/``false``/``null`` are JSON literals, anything else is text.
    A quoted value (``"2024"``) stays text."""
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if isinstance(value, str | int | float | bool) or value is None else text


def parse_cli_where(expressions: Sequence[str]) -> Where | None:
    """Parse ``--where`` options: each ``FIELD OP VALUE`` or a JSON object; all of them must match."""
    parts: list[dict[str, Any]] = []
    for expression in expressions:
        if expression.lstrip().startswith("{"):
            try:
                spec = json.loads(expression)
            except json.JSONDecodeError as error:
                raise FilterError(f"--where {expression!r}: not valid JSON ({error.msg})") from None
            parts.append(spec)
            continue
        match = _CLI_EXPRESSION.match(expression)
        if match is None:
            raise FilterError(f"--where {expression!r}: expected FIELD=VALUE (or != >= <= > <) or a JSON object")
        field, operator, value = match.groups()
        parts.append({field: {_CLI_OPERATORS[operator]: cli_value(value)}})
    if not parts:
        return None
    return parse_where(parts[0] if len(parts) == 1 else {"$and": parts})
