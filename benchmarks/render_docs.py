"""Rendered blocks in the docs: every measured table in README.md and docs/*.md is the output of a
command run on committed records, never typed by hand.

A rendered block is a marker line followed by a fenced text block:

    <!-- rendered: compare.py report benchmarks/results/examples/digits --columns ... -->
    ```text
    (the command's standard output)
    ```

COMMAND is a Python script and its arguments, run from the repository root with this
interpreter (`sys.executable COMMAND...`, split like a shell line, no shell).

    python benchmarks/render_docs.py           # rewrite every block with a fresh render
    python benchmarks/render_docs.py --check   # exit 1, listing each block that differs

tests/test_docs.py runs the check, so a table edited by hand, or records changed without
re-rendering, fails the suite.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MARKER = re.compile(r"^<!-- rendered: (?P<command>.+?) -->\s*$")
FENCE_OPEN = "```text"
FENCE_CLOSE = "```"
COLUMNS = 100  # a fixed terminal width, so a render does not depend on who runs it


@dataclass(frozen=True)
class Block:
    """One rendered block: `path`, the 1-based line of its marker, the command, and the line
    indices (0-based, into the file's lines) of its content: lines[start:end]."""

    path: Path
    line: int
    command: str
    start: int
    end: int


def doc_files(root: Path = ROOT) -> list[Path]:
    """README.md and docs/*.md under `root`, in that order."""
    return [p for p in [root / "README.md", *sorted((root / "docs").glob("*.md"))] if p.is_file()]


def find_blocks(path: Path, lines: list[str]) -> list[Block]:
    """The rendered blocks of one file's `lines`. Raises ValueError naming the file and line of a
    marker not directly followed by a ```text fence, or of a fence never closed."""
    blocks = []
    i = 0
    while i < len(lines):
        match = MARKER.match(lines[i])
        if not match:
            i += 1
            continue
        if i + 1 >= len(lines) or lines[i + 1].strip() != FENCE_OPEN:
            raise ValueError(f"{path}:{i + 1}: a rendered marker must be followed by a "
                             f"{FENCE_OPEN} line")
        end = i + 2
        while end < len(lines) and lines[end].strip() != FENCE_CLOSE:
            end += 1
        if end >= len(lines):
            raise ValueError(f"{path}:{i + 1}: the {FENCE_OPEN} block is never closed")
        blocks.append(Block(path, i + 1, match["command"], i + 2, end))
        i = end + 1
    return blocks


def render(command: str, root: Path = ROOT) -> list[str]:
    """The stdout lines of `sys.executable COMMAND` run in `root` (trailing blank lines dropped).
    Raises RuntimeError with the command's last stderr line when it fails."""
    env = {**os.environ, "COLUMNS": str(COLUMNS)}  # argparse wraps --help text to this width
    proc = subprocess.run([sys.executable, *shlex.split(command)], cwd=root, env=env,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise RuntimeError(f"`{command}` failed (exit {proc.returncode}): {last}")
    lines = proc.stdout.rstrip("\n").split("\n")
    return [line.rstrip() for line in lines] if proc.stdout.strip() else []


def process(paths: list[Path], root: Path = ROOT, write: bool = False) -> list[str]:
    """Render every block of `paths`; returns one line per block whose content differs from its
    fresh render (or whose command failed), and with `write` rewrites the differing blocks."""
    problems = []
    for path in paths:
        lines = path.read_text().split("\n")
        changed = False
        # Last block first, so earlier blocks' line indices stay valid while rewriting.
        for block in reversed(find_blocks(path, lines)):
            where = f"{path.relative_to(root) if path.is_relative_to(root) else path}:{block.line}"
            try:
                fresh = render(block.command, root)
            except RuntimeError as error:
                problems.append(f"{where}: {error}")
                continue
            if [line.rstrip() for line in lines[block.start:block.end]] != fresh:
                problems.append(f"{where}: differs from a fresh render of `{block.command}`")
                if write:
                    lines[block.start:block.end] = fresh
                    changed = True
        if changed:
            path.write_text("\n".join(lines))
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Render (or --check) the rendered blocks of "
                                     "README.md and docs/*.md from their commands.")
    parser.add_argument("--check", action="store_true",
                        help="change nothing; exit 1 listing every block that differs")
    parser.add_argument("files", nargs="*", type=Path,
                        help="markdown files (default: README.md and docs/*.md)")
    args = parser.parse_args(argv)
    paths = [p.resolve() for p in args.files] or doc_files()
    problems = process(paths, write=not args.check)
    for line in problems:
        print(line if args.check else line.replace("differs from", "rewritten with"),
              file=sys.stderr)
    if args.check:
        return 1 if problems else 0
    failed = [p for p in problems if "failed (exit" in p]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
