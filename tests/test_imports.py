"""Scoring files needs NumPy only: torch and numba load on first use of a torch-backed name."""

import subprocess
import sys


def _loaded_after(code: str) -> set[str]:
    report = "print(' '.join(m for m in ('torch', 'numba') if m in sys.modules))"
    probe = f"{code}\nimport sys\n{report}"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            check=True)
    return set(result.stdout.split())


def test_metrics_and_the_cli_start_without_torch_or_numba() -> None:
    assert _loaded_after("import crossent.metrics; import crossent.cli") == set()


def test_scoring_a_file_loads_neither_torch_nor_numba() -> None:
    modules = "files, columns, labels, result, segments, ranking_files"
    assert _loaded_after(f"from crossent.scoring import {modules}") == set()


def test_a_loss_name_loads_torch_on_first_use() -> None:
    assert "torch" in _loaded_after("import crossent; crossent.cross_entropy")


def test_the_lab_vocabularies_load_without_torch_and_run_lab_loads_it() -> None:
    assert _loaded_after("import crossent.lab; crossent.lab.LOSSES; crossent.lab.LabConfig()") == (
        set()
    )
    assert "torch" in _loaded_after("from crossent.lab import run_lab")
