"""The docs say what the code and the committed records say: every rendered block in README.md
and docs/*.md equals a fresh render of its command (benchmarks/render_docs.py), a block edited by
hand fails that check, links resolve, the preset table's parameter counts are the layer table's,
and the README stays a five-minute read whose test command is the one CI runs."""

from __future__ import annotations

import json
import re
import sys

from conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import render_docs

from common.specs import PRESETS, count_params

README = ROOT / "README.md"
EXAMPLE_RECORDS = ROOT / "benchmarks" / "results" / "examples" / "digits"
LINK = re.compile(r"\]\(([^)\s]+)\)")


def test_every_rendered_block_matches_a_fresh_render():
    problems = render_docs.process(render_docs.doc_files(ROOT), ROOT)
    assert not problems, ("stale rendered blocks (python benchmarks/render_docs.py re-renders "
                          "them):\n" + "\n".join(problems))


def test_a_block_edited_by_hand_fails_the_check(tmp_path):
    flags = ROOT / "docs" / "flags.md"
    lines = flags.read_text().split("\n")
    block = next(b for b in render_docs.find_blocks(flags, lines) if b.command == "compare.py --help")
    assert block.end > block.start, "the --help block is empty"
    lines[block.start] = lines[block.start].replace("usage:", "usage (edited):")
    edited = tmp_path / "flags.md"
    edited.write_text("\n".join(lines))
    problems = render_docs.process([edited], ROOT)
    assert len(problems) == 1 and "differs from a fresh render of `compare.py --help`" in problems[0]


def anchors(path) -> set[str]:
    """The anchors GitHub gives a markdown file's headings ('## Proof: parity' -> proof-parity)."""
    headings = re.findall(r"^#+ (.+)$", path.read_text(), flags=re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def test_every_relative_link_and_anchor_resolves():
    broken = []
    for doc in render_docs.doc_files(ROOT):
        for target in LINK.findall(doc.read_text()):
            if target.startswith(("http://", "https://", "mailto:")):
                continue
            file, _, anchor = target.partition("#")
            path = doc.parent / file if file else doc
            if not path.exists() or (anchor and path.suffix == ".md"
                                     and anchor not in anchors(path)):
                broken.append(f"{doc.relative_to(ROOT)}: {target}")
    assert not broken, broken


def test_the_preset_table_gives_each_preset_its_layer_table_parameters():
    rows = re.findall(r"^\| `(\w+)` \| (\d+)x(\d+)x(\d+) \| ([\d,]+) \|",
                      (ROOT / "docs" / "architectures.md").read_text(), flags=re.M)
    assert {name for name, *_ in rows} == set(PRESETS)
    for name, h, w, c, params in rows:
        assert PRESETS[name].input_shape == (int(h), int(w), int(c)), name
        assert f"{count_params(PRESETS[name], PRESETS[name].input_shape, 10):,}" == params, name


def test_the_readme_names_the_machine_and_date_of_its_records():
    records = [json.loads(p.read_text()) for p in sorted(EXAMPLE_RECORDS.rglob("record-*.json"))]
    assert records, f"no records in {EXAMPLE_RECORDS}"
    text = " ".join(README.read_text().split())
    for record in records:
        assert record["environment"]["cpu_model"] in text
        assert record["environment"]["date"] in text


def test_the_readme_is_short_and_its_test_command_is_the_one_ci_runs():
    text = README.read_text()
    assert len(text.splitlines()) <= 200
    ci_command = (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert f"    {ci_command}\n" in text
