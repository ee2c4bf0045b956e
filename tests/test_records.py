"""The record schema has one definition: the dataclasses in common/records.py, documented field
for field in results/README.md; records round-trip through JSON; unreadable files are one line;
the atomic writer never leaves half a file."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest
from conftest import ROOT

from common.errors import RecordError
from common.files import atomic_file, read_json, write_json
from common.records import SCHEMAS, RunRecord, read_record
from tests_support import make_record


def documented_fields() -> dict[str, set[str]]:
    """Per `### Name` section of results/README.md: the backticked names in the first column
    of its table (a cell may name several fields: `train_size`, `val_size`)."""
    text = (ROOT / "results" / "README.md").read_text()
    sections = re.split(r"^### ", text, flags=re.M)[1:]
    found = {}
    for section in sections:
        name = section.split("\n", 1)[0].strip()
        rows = [line for line in section.splitlines() if line.startswith("| `")]
        found[name] = {f for row in rows for f in re.findall(r"`([a-z_]+)`", row.split("|")[1])}
    return found


@pytest.mark.parametrize("schema", SCHEMAS, ids=lambda s: s.__name__)
def test_results_readme_lists_exactly_the_fields(schema):
    documented = documented_fields()
    assert schema.__name__ in documented, f"results/README.md has no '### {schema.__name__}'"
    assert documented[schema.__name__] == {f.name for f in dataclasses.fields(schema)}


def test_run_record_round_trips_through_json(tmp_path):
    record = make_record("torch", test_accuracy=0.8125, repeat=2)
    write_json(tmp_path / "record-torch.json", record)
    assert read_record(tmp_path / "record-torch.json") == record
    assert json.loads((tmp_path / "record-torch.json").read_text())["config"]["task"] == "digits"


@pytest.mark.parametrize("content,words", [
    ('{"task": "digits", "framew', "invalid JSON"),
    ("", "invalid JSON"),
    ("[1, 2]", "expected a JSON object"),
    ('{"task": "digits"}', "no framework"),
])
def test_unreadable_record_is_one_line_naming_the_file(tmp_path, content, words):
    path = tmp_path / "record-keras.json"
    path.write_text(content)
    with pytest.raises(RecordError) as err:
        read_record(path)
    message = str(err.value)
    assert str(path) in message and words in message and "\n" not in message


def test_missing_file_is_a_record_error(tmp_path):
    with pytest.raises(RecordError, match="cannot read"):
        read_json(tmp_path / "nope.json")


def test_atomic_file_keeps_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "report.md"
    path.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_file(path) as f:
            f.write("half")
            raise RuntimeError("disk full")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["report.md"]  # no temporary left


def test_unknown_fields_are_ignored_and_missing_optional_ones_default(tmp_path):
    data = make_record("keras").to_dict()
    data["from_a_newer_version"] = 1
    del data["transfer"]
    path = tmp_path / "r.json"
    path.write_text(json.dumps(data))
    assert read_record(path).transfer is None
    assert isinstance(read_record(path), RunRecord)
