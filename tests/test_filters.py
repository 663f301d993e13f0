import datetime as dt

import pytest

from memflow.filters import FilterError, parse_cli_where, parse_where

RECORDS = [
    ("a", {"user": "u1", "year": 2021, "date": "2024-02-01", "tags": ["x", "y"], "collection": "notes"}),
    ("b", {"user": "u2", "year": 2019, "date": "2023-12-31", "tags": ["y"], "collection": "default"}),
    ("c", {"user": "u1", "year": "2020", "collection": "default", "uri": "essays/c.txt"}),
]


def select(spec):
    where = parse_where(spec)
    assert where is not None
    return where.select(RECORDS)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"user": "u1"}, ["a", "c"]),
        ({"user": {"$ne": "u1"}}, ["b"]),
        ({"user": "u1", "collection": "default"}, ["c"]),
        ({"year": {"$gte": 2020}}, ["a"]),  # "2020" is a string: no match rather than an error
        ({"year": {"$lt": 2021}}, ["b"]),
        ({"date": {"$gte": "2024-01-01"}}, ["a"]),
        ({"date": {"$gte": dt.date(2024, 1, 1)}}, ["a"]),
        ({"user": {"$in": ["u2", "u3"]}}, ["b"]),
        ({"user": {"$nin": ["u2"]}}, ["a", "c"]),
        ({"tags": "x"}, ["a"]),
        ({"tags": {"$in": ["y"]}}, ["a", "b"]),
        ({"missing": {"$ne": 1}}, ["a", "b", "c"]),
        ({"missing": 1}, []),
        ({"$or": [{"user": "u2"}, {"year": {"$gt": 2020}}]}, ["a", "b"]),
        ({"$and": [{"user": "u1"}, {"$or": [{"year": 2021}, {"uri": "essays/c.txt"}]}]}, ["a", "c"]),
        ({"year": {"$gte": 2019, "$lt": 2021}}, ["b"]),
    ],
)
def test_where_selects_matching_records(spec, expected):
    assert select(spec) == expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"user": {"$regex": "u"}}, "unknown operator '$regex' on 'user'; expected one of $eq"),
        ({"$not": {"user": "u1"}}, "unknown operator '$not' at the top level"),
        ({"user": {"$in": "u1"}}, "$in on 'user' needs a list"),
        ({"user": {"$gt": [1]}}, "needs a single value"),
        ({"$or": []}, "$or needs a non-empty list"),
        ({}, "empty filter"),
        ({"user": {}}, "empty condition for 'user'"),
        (["user"], "expected a mapping"),
    ],
)
def test_malformed_filters_are_refused_with_a_message_naming_the_problem(spec, message):
    with pytest.raises(FilterError, match="where-filter") as error:
        parse_where(spec)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_cli_expressions_parse_values_and_combine_with_and():
    where = parse_cli_where(["user=u1", "year>=2021", 'date<"2025"'])
    assert where is not None
    assert where.select(RECORDS) == ["a"]
    assert where.fields() == {"user", "year", "date"}
    assert parse_cli_where([]) is None
    quoted = parse_cli_where(['year="2020"'])
    assert quoted is not None and quoted.select(RECORDS) == ["c"]


def test_cli_accepts_the_json_form_and_rejects_garbage():
    where = parse_cli_where(['{"user": {"$in": ["u2"]}}'])
    assert where is not None and where.select(RECORDS) == ["b"]
    with pytest.raises(FilterError, match="expected FIELD=VALUE"):
        parse_cli_where(["user"])
    with pytest.raises(FilterError, match="not valid JSON"):
        parse_cli_where(["{user: 1}"])
