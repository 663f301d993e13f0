"""memflow add / list / get / forget on records, run in-process through click's runner."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from memflow.cli.main import cli


def run(*args: str, input: str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), input=input)
    return result.exit_code, result.stdout, result.stderr


def test_add_from_stdin_arguments_and_jsonl_then_list_get_and_forget(tmp_path: Path, pg_essays: Path) -> None:
    store = str(tmp_path / "store")
    paragraph = (pg_essays / "sun.txt").read_text(encoding="utf-8")[:800]
    code, out, err = run(
        "add", "--store", store, "--id", "sun-3", "--meta", "user=alice", "--meta", "year=2024", input=paragraph + "\n"
    )
    assert code == 0, err
    assert out == "sun-3\n" and "added 1 record (" in err and "from <stdin>" in err

    code, out, err = run(
        "add", "--store", store, "Tea is brewed at 80 degrees.", "Coffee is brewed at 93 degrees.", "-q"
    )
    assert code == 0, err
    generated = out.split()
    assert len(generated) == 2 and err == ""

    records = tmp_path / "records.jsonl"
    records.write_text(
        json.dumps({"id": "n1", "text": "The meeting moved to Thursday.", "title": "Meeting", "metadata": {"room": 4}})
        + "\n",
        encoding="utf-8",
    )
    code, out, err = run("add", "--store", store, "--jsonl", str(records), "--meta", "source=mail", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["ids"] == ["n1"] and report["added"] == ["n1"] and report["chunks"] == 1

    code, out, _ = run("list", "--store", store, "--json")
    listed = {d["id"]: d for d in json.loads(out)}
    assert set(listed) == {"sun-3", "n1", *generated}
    assert listed["sun-3"]["metadata"] == {"user": "alice", "year": 2024}
    assert listed["n1"] == {"id": "n1", "title": "Meeting", "chunks": 1, "metadata": {"room": 4, "source": "mail"}}
    code, out, _ = run("list", "--store", store, "--limit", "1")
    assert out.startswith("sun-3  (1 chunk)") and '"user": "alice"' in out

    code, out, _ = run("get", "n1", "--store", store)
    assert code == 0 and out == "The meeting moved to Thursday.\n"
    code, _, err = run("get", "nope", "--store", store)
    assert code == 1 and "error: no record 'nope'" in err

    # the same JSONL again: nothing rewritten
    code, out, err = run("add", "--store", store, "--jsonl", str(records), "--meta", "source=mail")
    assert code == 0 and "added 0 records" in err and "skipped 1 unchanged" in err

    code, out, _ = run("search", "--store", store, "when is the meeting", "--json")
    assert json.loads(out)[0]["document"] == "n1"
    code, out, err = run("forget", "n1", "--store", store)
    assert code == 0, err
    code, out, _ = run("list", "--store", store, "--json")
    assert "n1" not in {d["id"] for d in json.loads(out)}


def test_bad_add_input_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    store = str(tmp_path / "store")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "text": "fine"}\n{"id": "b", "text": "  "}\n', encoding="utf-8")
    code, _, err = run("add", "--store", store, "--jsonl", str(bad))
    assert code == 1 and err.strip() == f"error: {bad}:2: the record is empty (nothing to store)"
    code, _, err = run("add", "--store", store, "one", "two", "--id", "x")
    assert code == 1 and err.strip() == "error: ids has 1 entries for 2 texts"
    code, _, err = run("add", "--store", store, "one", "--meta", "nokey")
    assert code == 2 and "'nokey' is not KEY=VALUE" in err
    code, _, err = run("add", "--store", store, "--jsonl", str(bad), "--id", "x")
    assert code == 2 and "--id is for TEXT or stdin" in err
    code, _, err = run("list", "--store", store)
    assert code == 1 and "no memflow store" in err
