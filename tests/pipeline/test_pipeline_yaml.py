"""The YAML loader: safe loading, line numbers, and the pipeline file's shape."""

from __future__ import annotations

from pathlib import Path

import pytest

from memflow.errors import PipelineError
from memflow.pipeline import Pipeline, load_spec, load_yaml, read_spec
from tests.pipeline.helpers import CHAIN, P, build


def test_lines_of_keys_and_items() -> None:
    doc = load_yaml(CHAIN, source="chain.yaml")
    assert doc.line("name") == 1
    assert doc.line("components") == 3
    assert doc.line("components", "numbers") == 4
    assert doc.line("components", "numbers", "params", "start") == 4
    assert doc.line("components", "double", "type") == 6
    assert doc.line("components", "double", "params", "factor") == 8
    assert doc.line("connections", 0) == 12
    assert doc.line("connections", 1) == 13
    assert doc.line("connections", 1, "to") == 13
    # an absent key falls back to its nearest ancestor
    assert doc.line("components", "double", "params", "nope") == 7
    assert doc.data["components"]["double"]["params"] == {"factor": 3}


def test_spec_from_yaml() -> None:
    spec = load_spec(CHAIN, source="chain.yaml")
    assert spec.name == "chain"
    assert spec.description == "numbers, doubled, summed"
    assert [c.name for c in spec.components] == ["numbers", "double", "total", "words"]
    double = spec.components[1]
    assert (double.line, double.type_line, double.param_lines) == (5, 6, {"factor": 8})
    assert [str(c) for c in spec.connections] == [
        "numbers.numbers -> double.numbers",
        "double.numbers -> total.numbers",
    ]
    assert [c.line for c in spec.connections] == [12, 13]


def test_plain_scalars_only() -> None:
    doc = load_yaml("a: 1\nb: 1.5\nc: true\nd: null\ne: text\nf: 2024-01-02\ng: [1, x]\n")
    assert doc.data == {"a": 1, "b": 1.5, "c": True, "d": None, "e": "text", "f": "2024-01-02", "g": [1, "x"]}


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        # An unclosed bracket is reported where it was opened, and where it was noticed.
        ("name: x\ncomponents:\n  a: {type: t\n", 3, "(noticed on line 4)"),
        ("name: x\ncomponents: [a, b\nconnections: []\n", 2, "(noticed on line 3)"),
        ("name: x\n  bad: indent\n", 2, "invalid YAML"),
        (
            "name: x\ncomponents:\n  a: {type: t}\n  a: {type: u}\n",
            4,
            "duplicate key 'a' (first defined on line 3)",
        ),
        ("name: x\nname: y\n", 2, "duplicate key 'name'"),
        ("a: !!int abc\n", 1, "invalid int value"),
        ("a: &x [1, *x]\n", 1, "refers to the node that contains it"),
        ("base: &b {type: t}\nc:\n  <<: *b\n", 3, "merge keys"),
        ("a: !custom 1\n", 1, "unsupported YAML tag"),
        ("a: !!set {x, y}\n", 1, "unsupported YAML tag"),
        ("a: 1\n---\nb: 2\n", 2, "invalid YAML"),
        ("", 1, "empty"),
        ("a: \x07\n", 1, "invalid YAML"),
    ],
)
def test_yaml_errors_have_lines(text: str, line: int, fragment: str) -> None:
    with pytest.raises(PipelineError) as info:
        load_yaml(text, source="p.yaml")
    assert info.value.file == "p.yaml"
    assert info.value.line == line
    assert fragment in str(info.value)
    assert str(info.value).startswith(f"p.yaml:{line}: ")


def test_python_tags_never_execute(tmp_path: Path) -> None:
    target = tmp_path / "pwned"
    text = f'components:\n  a: !!python/object/apply:os.mkdir ["{target}"]\n'
    with pytest.raises(PipelineError, match="unsupported YAML tag") as info:
        Pipeline.from_string(text, source="evil.yaml")
    assert info.value.line == 2
    assert not target.exists()
    with pytest.raises(PipelineError, match="unsupported YAML tag"):
        load_yaml("!!python/name:os.system\n")


def test_alias_bomb_is_refused() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 8)]
    with pytest.raises(PipelineError, match="alias bomb"):
        load_yaml("\n".join(lines) + "\n")


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("- a\n- b\n", 1, "must be a mapping"),
        ("name: x\nstages: {}\ncomponents: {a: {type: t}}\n", 2, "unknown top-level key 'stages'"),
        ("name: x\ndescription: d\n", 1, "no 'components'"),
        ("name: x\ncomponents: [a, b]\n", 2, "'components' must be a non-empty mapping"),
        ("name: x\ncomponents: {}\n", 2, "'components' must be a non-empty mapping"),
        ("name: [x]\ncomponents: {a: {type: t}}\n", 1, "'name' must be"),
        ("description: 5\ncomponents: {a: {type: t}}\n", 1, "'description' must be"),
        ("components:\n  a.b: {type: t}\n", 2, "invalid component name"),
        ("components:\n  a: loaders.auto\n", 2, "must be a mapping"),
        ("components:\n  a:\n    kind: t\n", 3, "unknown key 'kind'"),
        ("components:\n  a:\n    params: {}\n", 2, "needs a 'type'"),
        ("components:\n  a:\n    type: 5\n", 3, "needs a 'type'"),
        ("components:\n  a:\n    type: t\n    params: [1, 2]\n", 4, "'params' must be a mapping"),
        ("components:\n  a:\n    type: t\n    params: {1: x}\n", 4, "parameter names must be strings"),
        ("components: {a: {type: t}}\nconnections: a.x -> b.y\n", 2, "'connections' must be a list"),
        (
            "components: {a: {type: t}}\nconnections:\n  - a.x -> b.y\n  - a.x => b.y\n",
            4,
            "invalid connection",
        ),
        ("components: {a: {type: t}}\nconnections:\n  - a.x -> b\n", 3, "invalid connection"),
        ("components: {a: {type: t}}\nconnections:\n  - a -> b.y\n", 3, "invalid connection"),
        ("components: {a: {type: t}}\nconnections:\n  - 5\n", 3, "invalid connection"),
        ("components: {a: {type: t}}\nconnections:\n  - {from: a.x}\n", 3, "exactly 'from' and 'to'"),
        ("components: {a: {type: t}}\nconnections:\n  - {from: a.x, to: b}\n", 3, "invalid connection 'to'"),
    ],
)
def test_shape_errors_have_lines(text: str, line: int, fragment: str) -> None:
    with pytest.raises(PipelineError) as info:
        load_spec(text, source="p.yaml")
    assert (info.value.file, info.value.line) == ("p.yaml", line)
    assert fragment in str(info.value)


def test_defaults_and_connection_spacing() -> None:
    spec = load_spec("components:\n  a: {type: t}\nconnections:\n  -   a.x->b.y  \n", source="dir/my_pipe.yaml")
    assert spec.name == "my_pipe"
    assert spec.description == ""
    assert str(spec.connections[0]) == "a.x -> b.y"
    assert spec.components[0].params == {}
    assert load_spec("components: {a: {type: t}}\n").name == "pipeline"


def test_read_spec_and_from_yaml_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "pipe.yaml"
    path.write_text(CHAIN, encoding="utf-8")
    assert read_spec(path).name == "chain"
    pipe = Pipeline.from_yaml(path, trusted_modules=["tests.pipeline"])
    assert pipe.source == str(path)
    path.write_text(CHAIN.replace("factor: 3", "factor: 3\n      fctor: 4"), encoding="utf-8")
    with pytest.raises(PipelineError) as info:
        Pipeline.from_yaml(path, trusted_modules=["tests.pipeline"])
    assert str(info.value).startswith(f"{path}:9: ")
    with pytest.raises(PipelineError, match="cannot read"):
        read_spec(tmp_path / "missing.yaml")
    (tmp_path / "latin.yaml").write_bytes(b"name: caf\xe9\n")
    with pytest.raises(PipelineError, match="not UTF-8"):
        read_spec(tmp_path / "latin.yaml")


def test_from_dict_has_no_lines() -> None:
    with pytest.raises(PipelineError) as info:
        Pipeline.from_dict(
            {"components": {"a": {"type": f"{P}Numbers", "params": {"start": "1"}}}},
            trusted_modules=["tests.pipeline"],
        )
    assert info.value.file == "<dict>"
    assert info.value.line is None
    assert build(CHAIN).to_dict()["connections"][0] == "numbers.numbers -> double.numbers"
