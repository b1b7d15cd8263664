"""Output that survives a pipe: tables at full width, no cell cut with "…", no row folded over
two lines, no progress bars, and the tables also as JSON (``--json``)."""

import json
import os
import subprocess
import sys
from pathlib import Path

BORDERS = "┏┃┡│└"  # rich's box characters that begin a table line


def _table_blocks(lines: list[str]) -> list[list[str]]:
    blocks: list[list[str]] = []
    current: list[str] = []
    for line in lines:
        if line[:1] in BORDERS:
            current.append(line)
        elif current:
            blocks.append(current)
            current = []
    return blocks + ([current] if current else [])


def test_train_piped_prints_whole_lines_and_whole_tables(tmp_path: Path) -> None:
    env = {**os.environ, "COLUMNS": "80", "NO_COLOR": "1"}  # 80 is what a pipe used to get
    command = [sys.executable, "-m", "crossent", "train", "--data", "simulated", "--users", "300",
               "--videos", "60", "--epochs", "1", "--out", str(tmp_path / "run"),
               "--json", str(tmp_path / "tables.json")]
    # capture_output: stdout is a pipe, as in `crossent train ... | cat`
    result = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
    lines = result.stdout.splitlines()
    assert "…" not in result.stdout
    assert "\x1b[" not in result.stdout  # no colour codes in a pipe
    assert "" not in lines  # a progress bar on a non-terminal leaves an empty line behind
    # a line that wrapped at 80 columns before
    assert any(line.endswith("model = sequence, objective = full") for line in lines)
    blocks = _table_blocks(lines)
    assert len(blocks) == 2  # retrieval and cross-entropy (no ranking stage asked for)
    for block in blocks:
        assert len({len(line) for line in block}) == 1  # every row as wide as the border
    tables = json.loads((tmp_path / "tables.json").read_text())
    retrieval = tables["Candidate generation (test)"]
    assert retrieval["headers"][:3] == ["model", "HR@10", "NDCG@10"]
    names = [row[0] for row in retrieval["rows"]]
    assert {"model", "most popular", "bag model", "truth (oracle)"} <= set(names)
    for name in names:  # each whole, in its own row of the printed table
        assert sum(line.startswith(f"│ {name} ") for line in blocks[0]) == 1
    cross_entropy = tables["Next-watch cross-entropy (test)"]
    for row in cross_entropy["rows"]:
        assert sum(line.startswith(f"│ {row[0]} ") for line in blocks[1]) == 1
