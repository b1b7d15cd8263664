"""crossent.scoring.dask on a real 2-worker LocalCluster: the single-process numbers bit for bit.

Seven files (and seven partitions) for two workers, so tasks finish out of order; every number
of the result, segments and reliability curves included, is compared with ``==``. The log loss
and Brier score are also checked against scikit-learn on the same rows.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.metrics import brier_score_loss, log_loss
from typer.testing import CliRunner

pytest.importorskip("dask.dataframe", reason="needs the dask extra: pip install 'crossent[dask]'")
distributed = pytest.importorskip("distributed", reason="needs the dask extra (distributed)")

import dask  # noqa: E402
import dask.dataframe as dd  # noqa: E402
import pandas as pd  # noqa: E402
import psutil  # noqa: E402  (a dependency of distributed)

from crossent import io  # noqa: E402
from crossent.cli import app  # noqa: E402
from crossent.errors import CrossentError, DataFileError  # noqa: E402
from crossent.scoring import dask as on_dask  # noqa: E402
from crossent.scoring.columns import Columns  # noqa: E402
from crossent.scoring.files import ScoreResult, merge_in_order, score_file  # noqa: E402

FILES = 7  # more than the 2 workers: tasks run, and finish, out of order
COLUMNS = Columns("outcome", prob="prob", weight="w")
SETTINGS: dict[str, Any] = {"positive": "yes", "by": ("country",), "block_bytes": 4096}
CLI_OPTIONS = ["--target", "outcome", "--prob", "prob", "--weight", "w", "--positive", "yes"]


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address="127.0.0.1:0",
    )
    with cluster, distributed.Client(cluster) as connected:
        yield connected


@pytest.fixture(scope="module")
def predictions(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Path], pd.DataFrame]:
    """Seven CSV files of weighted binary predictions with word labels, and all their rows."""
    rng = np.random.default_rng(7)
    folder = tmp_path_factory.mktemp("dask")
    paths, frames = [], []
    for i in range(FILES):
        n = 700 + 130 * i
        prob = np.round(rng.beta(1 + i % 3, 2, size=n).clip(0.001, 0.999), 6)
        frame = pd.DataFrame(
            {
                "outcome": np.where(rng.uniform(size=n) < prob, "yes", "no"),
                "prob": prob,
                "w": np.round(rng.uniform(0.5, 2.0, size=n), 3),
                "country": rng.choice(["fr", "de", "us", "jp"], size=n),
            }
        )
        paths.append(folder / f"part-{i}.csv")
        frame.to_csv(paths[-1], index=False)
        frames.append(frame)
    return paths, pd.concat(frames, ignore_index=True)


def _assert_identical(ours: ScoreResult, alone: ScoreResult) -> None:
    """Every number equal with ``==``: the JSON fields, segments and every reliability curve."""
    assert ours.to_dict() == alone.to_dict()
    curves = [(ours.curve, alone.curve)]
    curves += [(a.curve, b.curve) for a, b in zip(ours.segments, alone.segments, strict=True)]
    for mine, theirs in curves:
        for name in ("edges", "mean_predicted", "observed", "weight"):
            assert np.array_equal(getattr(mine, name), getattr(theirs, name), equal_nan=True)


def _assert_sklearn(result: ScoreResult, frame: pd.DataFrame) -> None:
    y = frame["outcome"] == "yes"
    assert abs(result.log_loss - log_loss(y, frame["prob"], sample_weight=frame["w"])) < 1e-12
    assert abs(result.brier - brier_score_loss(y, frame["prob"], sample_weight=frame["w"])) < 1e-12
    mine = {segment.key: segment for segment in result.segments}
    assert sorted(mine) == [(c,) for c in sorted(frame["country"].unique())]
    for (country,), segment in mine.items():
        rows = frame["country"] == country
        expected = log_loss(y[rows], frame["prob"][rows], sample_weight=frame["w"][rows])
        assert segment.rows == rows.sum()
        assert abs(segment.log_loss_nats - expected) < 1e-12


def test_files_on_dask_equal_the_single_process_run_bit_for_bit(client, predictions) -> None:  # type: ignore[no-untyped-def]
    paths, frame = predictions
    sources = io.expand([str(path) for path in paths])
    ours = on_dask.score_sources(sources, COLUMNS, SETTINGS, "nats")
    scorers = [score_file(source, COLUMNS, SETTINGS) for source in sources]
    alone = merge_in_order(scorers).result()
    _assert_identical(ours, alone)
    _assert_sklearn(ours, frame)
    # the order matters on these rows, so the equality above is not a matter of luck
    scorers = [score_file(source, COLUMNS, SETTINGS) for source in sources]
    assert merge_in_order(reversed(scorers)).result().to_dict() != alone.to_dict()


def test_partitions_on_dask_equal_the_synchronous_scheduler_bit_for_bit(
    client, predictions
) -> None:  # type: ignore[no-untyped-def]
    _, frame = predictions
    ddf = dd.from_pandas(frame, npartitions=FILES)
    options: dict[str, Any] = dict(target="outcome", prob="prob", weight="w", positive="yes")
    ours = on_dask.score(ddf, by=["country"], **options)
    with dask.config.set(scheduler="synchronous"):
        alone = on_dask.score(ddf, by=["country"], **options)
    _assert_identical(ours, alone)
    _assert_sklearn(ours, frame)


def _score_json(*arguments: str) -> dict[str, Any]:
    result = CliRunner().invoke(app, ["score", *arguments, *CLI_OPTIONS, "--json"])
    assert result.exit_code == 0, result.output
    payload: dict[str, Any] = json.loads(result.stdout)
    return payload


def test_cli_dask_address_prints_the_single_process_json(client, predictions) -> None:  # type: ignore[no-untyped-def]
    paths, frame = predictions
    files = [str(path) for path in paths]
    on_cluster = _score_json(*files, "--by", "country", "--dask", client.scheduler.address)
    assert on_cluster == _score_json(*files, "--by", "country")
    y = frame["outcome"] == "yes"
    assert on_cluster["rows"] == len(frame)
    expected = log_loss(y, frame["prob"], sample_weight=frame["w"])
    assert abs(on_cluster["log_loss"] - expected) < 1e-12


def test_cli_dask_local_starts_a_cluster_and_shuts_it_down(predictions, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    paths, _ = predictions
    monkeypatch.setattr(on_dask, "LOCAL_WORKERS", 2)
    files = [str(path) for path in paths[:3]]
    before = {child.pid for child in psutil.Process().children(recursive=True)}
    assert _score_json(*files, "--dask", "local") == _score_json(*files)
    deadline = time.monotonic() + 10
    while (left := {c.pid for c in psutil.Process().children(recursive=True)} - before) and (
        time.monotonic() < deadline
    ):
        time.sleep(0.1)
    assert not left, f"worker processes still running: {left}"


def test_the_first_bad_file_in_order_is_the_error_on_dask_too(client, tmp_path) -> None:  # type: ignore[no-untyped-def]
    paths = []
    for i in range(5):
        paths.append(tmp_path / f"part-{i}.csv")
        bad = "1,1.5" if i in (1, 3) else "1,0.5"
        paths[-1].write_text(f"label,prob\n0,0.25\n{bad}\n")
    sources = io.expand([str(path) for path in paths])
    columns, settings = Columns("label", prob="prob"), {"labels": None}
    with pytest.raises(DataFileError) as alone:
        merge_in_order(score_file(source, columns, settings) for source in sources)
    with pytest.raises(DataFileError) as ours:
        on_dask.score_sources(sources, columns, settings, "nats")
    assert str(ours.value) == str(alone.value)
    assert "part-1.csv" in str(ours.value) and "line 3" in str(ours.value)


def test_bad_row_in_a_partition_is_named_by_partition_and_row(client) -> None:  # type: ignore[no-untyped-def]
    frame = pd.DataFrame({"label": [1, 0, 1, 0], "prob": [0.5, 0.5, 0.5, 1.5]})
    with pytest.raises(CrossentError, match=r"partition 1, column 'prob': row 2: probability 1.5"):
        on_dask.score(dd.from_pandas(frame, npartitions=2))
