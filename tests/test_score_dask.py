"""crossent.metrics.dask on a real 2-worker LocalCluster: the single-process numbers, sklearn's."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.metrics import log_loss
from typer.testing import CliRunner

pytest.importorskip("dask.dataframe", reason="needs the dask extra: pip install 'crossent[dask]'")
distributed = pytest.importorskip("distributed", reason="needs the dask extra (distributed)")

import dask.dataframe as dd  # noqa: E402
import pandas as pd  # noqa: E402

from crossent.cli import app  # noqa: E402
from crossent.errors import CrossentError  # noqa: E402
from crossent.metrics import dask as on_dask  # noqa: E402
from crossent.metrics.file_columns import Columns  # noqa: E402
from crossent.metrics.files import FileScorer  # noqa: E402


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
    )
    with cluster, distributed.Client(cluster) as connected:
        yield connected


@pytest.fixture(scope="module")
def predictions(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    rng = np.random.default_rng(7)
    n = 4000
    prob = np.round(rng.uniform(0.01, 0.99, size=n), 6)
    frame = pd.DataFrame(
        {
            "outcome": np.where(rng.uniform(size=n) < prob, "yes", "no"),
            "prob": prob,
            "country": rng.choice(["fr", "de", "us"], size=n),
        }
    )
    path = tmp_path_factory.mktemp("dask") / "preds.csv"
    frame.to_csv(path, index=False)
    return path, frame


def test_dask_partitions_merge_to_the_single_process_numbers(client, predictions) -> None:  # type: ignore[no-untyped-def]
    path, frame = predictions
    ddf = dd.from_pandas(frame, npartitions=5)
    ours = on_dask.score(ddf, target="outcome", prob="prob", positive="yes", by=["country"])
    single = FileScorer(Columns("outcome", prob="prob"), positive="yes", by=["country"])
    single.add_file(path)
    alone = single.result()
    assert ours.rows == alone.rows == len(frame)
    assert abs(ours.log_loss - log_loss(frame["outcome"], frame["prob"])) < 1e-12
    for name in ("log_loss", "brier", "ece", "roc_auc", "normalized_entropy"):
        assert getattr(ours, name) == pytest.approx(getattr(alone, name), rel=1e-13, abs=0)
    assert ours.curve.weight.tolist() == alone.curve.weight.tolist()  # counts: identical
    mine = {s.key: s for s in ours.segments}
    for segment in alone.segments:
        rows = frame["country"] == segment.key[0]
        expected = log_loss(frame["outcome"][rows], frame["prob"][rows])
        assert mine[segment.key].rows == segment.rows == rows.sum()
        assert abs(mine[segment.key].log_loss_nats - expected) < 1e-12
        assert mine[segment.key].roc_auc == pytest.approx(segment.roc_auc, rel=1e-13)


def test_cli_dask_scores_files_on_the_scheduler(client, predictions) -> None:  # type: ignore[no-untyped-def]
    path, frame = predictions
    result = CliRunner().invoke(
        app,
        ["score", str(path), str(path), "--positive", "yes", "--dask", client.scheduler.address,
         "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["rows"] == 2 * len(frame)
    assert abs(payload["log_loss"] - log_loss(frame["outcome"], frame["prob"])) < 1e-12


def test_bad_row_in_a_partition_is_named_by_partition_and_row(client) -> None:  # type: ignore[no-untyped-def]
    frame = pd.DataFrame({"label": [1, 0, 1, 0], "prob": [0.5, 0.5, 0.5, 1.5]})
    with pytest.raises(CrossentError, match=r"partition 1, column 'prob': row 2: probability 1.5"):
        on_dask.score(dd.from_pandas(frame, npartitions=2))
