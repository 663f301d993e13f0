"""Mangled pipeline files either build or fail with a PipelineError: never any other exception."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memflow.errors import PipelineError
from tests.pipeline.helpers import P, build

BASE = f"""\
name: fuzz
description: every construct the loader knows
components:
  numbers: {{type: "{P}Numbers", params: {{start: 1}}}}
  double:
    type: "{P}Double"
    params:
      factor: 3
  total: {{type: "{P}Sum"}}
  words: {{type: "{P}Words"}}
  merge: {{type: "{P}Merge"}}
  conf:
    type: "{P}Settings"
    params: {{size: 2, ratio: 0.25, mode: slow, tags: [a, b], root: data}}
  echo: &e {{type: "{P}Echo"}}
connections:
  - numbers.numbers -> double.numbers
  - {{from: double.numbers, to: total.numbers}}
  - {{from: numbers.numbers, to: merge.left}}
  - double.numbers -> merge.right
  - merge.numbers -> echo.value
"""

# Characters that matter to YAML or to our own parsing (dots, arrows, colons), plus some noise.
ALPHABET = st.sampled_from(list(" \t:-{}[],&*!|>'\"#%@`?.<=_0123456789abcxyz\u00e9\x00\x85\ufeff"))

OPS = st.tuples(
    st.sampled_from(["delete", "duplicate", "swap", "insert", "remove_char", "indent", "dedent", "replace"]),
    st.integers(min_value=0, max_value=200),
    st.integers(min_value=0, max_value=200),
    st.text(ALPHABET, min_size=1, max_size=6),
)


def mutate(text: str, ops: list[tuple[str, int, int, str]]) -> str:
    lines = text.splitlines()
    for op, i, j, chars in ops:
        if not lines:
            break
        i %= len(lines)
        line = lines[i]
        if op == "delete":
            del lines[i]
        elif op == "duplicate":
            lines.insert(i, line)
        elif op == "swap":
            j %= len(lines)
            lines[i], lines[j] = lines[j], line
        elif op == "insert":
            at = j % (len(line) + 1)
            lines[i] = line[:at] + chars + line[at:]
        elif op == "remove_char" and line:
            at = j % len(line)
            lines[i] = line[:at] + line[at + 1 :]
        elif op == "indent":
            lines[i] = " " * (j % 5 + 1) + line
        elif op == "dedent":
            lines[i] = line[min(j % 5 + 1, len(line) - len(line.lstrip(" "))) :]
        elif op == "replace":
            lines[i] = chars
    return "\n".join(lines) + "\n"


def test_base_pipeline_is_valid() -> None:
    pipe = build(BASE)
    assert set(pipe.components) == {"numbers", "double", "total", "words", "merge", "conf", "echo"}
    assert len(pipe.connections) == 5


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(OPS, min_size=1, max_size=4))
def test_mutations_build_or_raise_pipeline_error(ops: list[tuple[str, int, int, str]]) -> None:
    text = mutate(BASE, ops)
    try:
        pipe = build(text)
    except PipelineError as exc:
        assert str(exc).startswith("test.yaml")
        assert exc.line is None or exc.line >= 1
        return
    # whatever built must also render
    assert pipe.show()
    assert pipe.to_dict()["components"]
