"""crossent.distributed: the catalogue-sharded cross-entropy equals the unsharded one.

Multi-process tests spawn 2 and 3 gloo processes on 127.0.0.1 (one spawn per world size, every
case inside it); each rank compares its loss and gradients with the full problem's materialised
logits through torch.nn.functional.cross_entropy in float64.
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

import crossent
from crossent.cli import app
from crossent.distributed import gather_shards, shard_range, sharded_cross_entropy
from crossent.errors import CrossentError
from crossent.recsys.evaluation.next_watch import retrieval_cross_entropy
from crossent.recsys.models.networks import CandidateConfig, CandidateModel
from crossent.recsys.serving.checkpoint import load_checkpoint
from crossent.recsys.training.loop import fit_candidate
from crossent.recsys.training.parallel import Launch, ShardedCandidate

from _sharded_workers import (  # isort: skip
    CASES,
    TOLERANCE,
    Case,
    make_problem,
    reference_loss,
    spawn_world,
)
from _training_workers import (  # isort: skip
    TRAIN,
    all_checks_worker,
    fresh_model,
    small_split,
)
import itertools

# ---------------------------------------------------------------- shard_range


def test_shard_range_tiles_the_catalogue_with_sizes_differing_by_at_most_one() -> None:
    for classes in (1, 2, 7, 10, 101):
        for world in (1, 2, 3, 4, 8):
            ranges = [shard_range(classes, rank, world) for rank in range(world)]
            assert ranges[0][0] == 0 and ranges[-1][1] == classes
            assert all(a[1] == b[0] for a, b in itertools.pairwise(ranges))
            sizes = [stop - start for start, stop in ranges]
            assert max(sizes) - min(sizes) <= 1
            assert sizes == [len(part) for part in torch.arange(classes).tensor_split(world)]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ((0, 0, 1), r"num_classes = 0 must be an integer >= 1"),
        ((10, 0, 0), r"world_size = 0 must be an integer >= 1"),
        ((10, 3, 3), r"rank = 3 must be an integer in \[0, 2\]"),
        ((10, 1.0, 3), r"rank = 1.0 must be an integer"),
    ],
)
def test_shard_range_rejects_bad_arguments(arguments: tuple[Any, ...], message: str) -> None:
    with pytest.raises(CrossentError, match=message):
        shard_range(*arguments)


# ---------------------------------------------------------------- one process (no group)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_world_of_one_matches_materialised_logits(
    case: Case, monkeypatch: pytest.MonkeyPatch
) -> None:
    if case.block_elements is not None:
        monkeypatch.setattr(crossent.distributed.sharded, "_CHUNK_ELEMENTS", case.block_elements)
    problem = make_problem(case, seed=1)
    hidden = problem["hidden"].clone().requires_grad_(True)
    weight = problem["weight"].clone().requires_grad_(True)
    bias = problem["bias"].clone().requires_grad_(True) if case.bias else None
    reference = reference_loss(hidden, weight, bias, problem["target"], case)
    upstream = torch.rand(reference.shape, dtype=torch.float64) + 0.5
    inputs = [t for t in (hidden, weight, bias) if t is not None]
    expected_grads = torch.autograd.grad(reference, inputs, upstream)
    loss = sharded_cross_entropy(
        hidden, weight, problem["target"], shard_offset=0, bias_shard=bias,
        label_smoothing=case.label_smoothing, smoothing=case.smoothing,  # type: ignore[arg-type]
        reduction=case.reduction, base=case.base, chunk_size=case.chunk_size,  # type: ignore[arg-type]
        z_loss=case.z_loss, softcap=case.softcap,
    )
    grads = torch.autograd.grad(loss, inputs, upstream)
    torch.testing.assert_close(loss, reference, rtol=1e-12, atol=1e-12)
    for ours, expected in zip(grads, expected_grads, strict=True):
        torch.testing.assert_close(ours, expected, rtol=1e-10, atol=1e-12)


def test_world_of_one_passes_gradcheck_for_hidden_weight_and_bias() -> None:
    generator = torch.Generator().manual_seed(3)
    hidden = torch.randn(6, 3, dtype=torch.float64, generator=generator, requires_grad=True)
    weight = torch.randn(5, 3, dtype=torch.float64, generator=generator, requires_grad=True)
    bias = torch.randn(5, dtype=torch.float64, generator=generator, requires_grad=True)
    target = torch.tensor([0, 4, -100, 2, 2, 1])

    def loss(h: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return sharded_cross_entropy(
            h, w, target, shard_offset=0, bias_shard=b, label_smoothing=0.1, chunk_size=4,
            smoothing="off_target",
        )

    assert torch.autograd.gradcheck(loss, (hidden, weight, bias))


def test_float32_input_gives_float32_loss_and_gradients_close_to_float64() -> None:
    generator = torch.Generator().manual_seed(4)
    hidden = torch.randn(40, 16, generator=generator, requires_grad=True)
    weight = torch.randn(500, 16, generator=generator, requires_grad=True)
    target = torch.randint(0, 500, (40,), generator=generator)
    loss = sharded_cross_entropy(hidden, weight, target, shard_offset=0, chunk_size=7)
    loss.backward()
    hidden64 = hidden.detach().double().requires_grad_(True)
    reference = F.cross_entropy(hidden64 @ weight.detach().double().T, target)
    reference.backward()
    assert loss.dtype == torch.float32 and hidden.grad is not None
    assert hidden.grad.dtype == torch.float32
    assert math.isclose(loss.item(), reference.item(), rel_tol=1e-5)
    torch.testing.assert_close(hidden.grad.double(), hidden64.grad, rtol=1e-4, atol=1e-6)


def test_large_logits_stay_finite() -> None:
    hidden = torch.tensor([[1000.0, -1000.0], [0.0, 0.0]], dtype=torch.float64)
    weight = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]], dtype=torch.float64)
    target = torch.tensor([1, 0])
    loss = sharded_cross_entropy(hidden, weight, target, shard_offset=0, reduction="none")
    expected = F.cross_entropy(hidden @ weight.T, target, reduction="none")
    torch.testing.assert_close(loss, expected)
    assert torch.isfinite(loss).all()


def test_all_ignored_batch_returns_zero_with_zero_grad() -> None:
    hidden = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(6, 3, dtype=torch.float64, requires_grad=True)
    target = torch.full((4,), -1)
    loss = sharded_cross_entropy(hidden, weight, target, shard_offset=0, ignore_index=-1)
    loss.backward()
    assert float(loss.detach()) == 0.0
    assert hidden.grad is not None and weight.grad is not None
    assert not hidden.grad.any() and not weight.grad.any()


def test_matches_crossent_linear_cross_entropy() -> None:
    linear_cross_entropy = getattr(crossent, "linear_cross_entropy", None)
    if linear_cross_entropy is None:
        pytest.skip("crossent.linear_cross_entropy has not landed yet")
    generator = torch.Generator().manual_seed(5)
    hidden = torch.randn(33, 8, dtype=torch.float64, generator=generator, requires_grad=True)
    weight = torch.randn(50, 8, dtype=torch.float64, generator=generator, requires_grad=True)
    bias = torch.randn(50, dtype=torch.float64, generator=generator, requires_grad=True)
    target = torch.randint(0, 50, (33,), generator=generator)
    target[::5] = -100
    options: dict[str, Any] = {"label_smoothing": 0.1, "reduction": "sum", "base": "bits"}
    ours = sharded_cross_entropy(hidden, weight, target, shard_offset=0, bias_shard=bias, **options)
    ours_grads = torch.autograd.grad(ours, (hidden, weight, bias))
    theirs = linear_cross_entropy(hidden, weight, target, bias=bias, **options)
    theirs_grads = torch.autograd.grad(theirs, (hidden, weight, bias))
    torch.testing.assert_close(ours, theirs)
    for mine, other in zip(ours_grads, theirs_grads, strict=True):
        torch.testing.assert_close(mine, other)


def test_gather_shards_without_a_group_returns_a_copy() -> None:
    weight = torch.randn(4, 2, requires_grad=True)
    full = gather_shards(weight, shard_offset=0)
    assert full is not None and torch.equal(full, weight.detach()) and not full.requires_grad


_H = torch.zeros(3, 2)
_W = torch.zeros(4, 2)
_Y = torch.tensor([0, 1, 3])


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"target": torch.tensor([0, 4, 1])}, r"target\[1\] = 4 is outside \[0, 4\)"),
        ({"target": torch.tensor([0, -2, 1])}, r"target\[1\] = -2 is outside \[0, 4\)"),
        ({"target": torch.tensor([0.0, 1.0, 2.0])}, r"target must hold class indices in an"),
        ({"target": torch.tensor([0, 1])}, r"target has shape \(2,\) but hidden has shape"),
        ({"weight_shard": torch.zeros(4, 3)}, r"weight_shard has shape \(4, 3\) but hidden has D"),
        ({"weight_shard": torch.zeros(4)}, r"weight_shard must be a 2-D tensor"),
        ({"weight_shard": torch.zeros(4, 2).double()}, r"weight_shard is torch.float64"),
        ({"bias_shard": torch.zeros(3)}, r"bias_shard must have shape \(4,\)"),
        ({"hidden": torch.tensor([[0.0, 0.0], [0.0, math.nan], [0.0, 0.0]])},
         r"hidden row 1 is not finite"),
        ({"weight_shard": torch.tensor([[0.0, 0.0]] * 3 + [[math.inf, 0.0]])},
         r"weight_shard row 3 \(class 3\) is not finite"),
        ({"hidden": torch.zeros(3, 2, dtype=torch.int64)}, r"hidden must be a floating-point"),
        ({"shard_offset": 2}, r"shard_offset = 2 on rank 0 leaves classes \[0, 2\) in no shard"),
        ({"shard_offset": -1}, r"shard_offset = -1 must be an integer >= 0"),
        ({"weight_shard": torch.zeros(0, 2)}, r"every weight_shard is empty"),
        ({"reduction": "avg"}, r"reduction = 'avg' is not one of 'none', 'sum', 'mean'"),
        ({"smoothing": "both"}, r"smoothing = 'both' is not one of 'uniform', 'off_target'"),
        ({"label_smoothing": 1.5}, r"label_smoothing = 1.5 is outside \[0, 1\]"),
        ({"chunk_size": 0}, r"chunk_size = 0 must be an integer >= 1 or None"),
        ({"ignore_index": 0.5}, r"ignore_index = 0.5 must be an integer"),
        ({"base": 1.0}, r"base = 1.0 must be a finite number > 1"),
        ({"group": object()}, r"group was given but torch.distributed is not initialised"),
    ],
)
def test_bad_input_raises_crossent_error_naming_it(
    overrides: dict[str, Any], message: str
) -> None:
    arguments: dict[str, Any] = {"hidden": _H, "weight_shard": _W, "target": _Y, "shard_offset": 0}
    arguments.update(overrides)
    with pytest.raises(CrossentError, match=message):
        sharded_cross_entropy(
            arguments.pop("hidden"), arguments.pop("weight_shard"), arguments.pop("target"),
            **arguments,
        )


# ---------------------------------------------------------------- 2 and 3 gloo processes


@pytest.fixture(scope="module", params=[2, 3], ids=["2_ranks", "3_ranks"])
def world_results(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    world_size = request.param
    out_dir: Path = tmp_path_factory.mktemp(f"sharded_{world_size}")
    return world_size, spawn_world(all_checks_worker, world_size, out_dir)


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_sharded_loss_and_gradients_equal_the_unsharded_ones(
    world_results: Any, case: Case
) -> None:
    world_size, results = world_results
    tolerance = TOLERANCE[case.dtype]
    for rank, result in enumerate(results):
        diffs = result[case.name]
        scale = max(1.0, diffs.pop("loss_scale"))
        for quantity, difference in diffs.items():
            assert difference <= tolerance * scale, (
                f"{world_size} ranks, rank {rank}: {quantity} differs by {difference:.3g}"
            )


_CROSS_RANK_ERRORS = {
    "overlap": r"shard of rank 1 \[\d+, \d+\) overlaps shard of rank 0 \[0, \d+\)",
    "gap": r"shard_offset = \d+ on rank \d leaves classes \[\d+, \d+\) in no shard",
    "target_outside": r"target\[2\] = 10 is outside \[0, 10\) \(V = 10 classes over \d shard",
    "target_differs": r"target on rank \d differs from target on rank 0",
    "rows_differ": r"hidden has 5 rows of width 4 on rank \d but 6 rows of width 4 on rank 0",
    "options_differ": r"rank \d passed different options",
}


@pytest.mark.parametrize("error", sorted(_CROSS_RANK_ERRORS))
def test_inconsistent_ranks_raise_crossent_error_on_every_rank(
    world_results: Any, error: str
) -> None:
    _, results = world_results
    for result in results:
        assert re.search(_CROSS_RANK_ERRORS[error], result["errors"][error]), result["errors"]


def test_bad_input_on_one_rank_is_named_there_and_reported_by_the_others(
    world_results: Any,
) -> None:
    world_size, results = world_results
    last = world_size - 1
    messages = [result["errors"]["bad_width_on_last_rank"] for result in results]
    assert re.search(rf"rank {last}: weight_shard has shape \(\d+, 5\) but hidden has D = 4",
                     messages[last])
    for message in messages[:last]:
        assert re.search(rf"rank {last} rejected its input", message)


def test_group_stays_usable_after_errors_and_loss_is_the_same_on_every_rank(
    world_results: Any,
) -> None:
    _, results = world_results
    losses = {result["errors"]["after_errors_loss"] for result in results}
    assert len(losses) == 1


def test_gather_shards_collects_uneven_permuted_shards_in_class_order_on_rank_0(
    world_results: Any,
) -> None:
    _, results = world_results
    assert results[0]["gathered"] is True
    assert all(result["gathered"] is None for result in results[1:])


@pytest.mark.parametrize(
    "check", ["gather_forward", "gather_backward", "sum_forward", "copy_backward"]
)
def test_data_parallel_glue_matches_its_definition(world_results: Any, check: str) -> None:
    _, results = world_results
    assert all(result["glue"][check] for result in results)


def test_glue_without_a_group_is_the_identity() -> None:
    rows = torch.randn(3, 2)
    assert crossent.distributed.gather_rows(rows, [3]) is rows
    assert crossent.distributed.copy_to_shards(rows) is rows
    assert crossent.distributed.sum_from_shards(rows) is rows
    with pytest.raises(CrossentError, match=r"counts = \[2\] must list the rows of each"):
        crossent.distributed.gather_rows(rows, [2])


# ---------------------------------------------------------------- training the recommender


@pytest.mark.parametrize("kind", ["sequence", "bag"])
def test_sharded_candidate_of_one_rank_has_the_model_loss_and_gradients(kind: str) -> None:
    split = small_split()
    reference, sharded_model = fresh_model(split, kind), fresh_model(split, kind)
    windows, targets = reference.examples(split.train)
    rows = torch.arange(0, 60, 2)
    expected = reference.loss(windows[rows], targets[rows])  # masked full softmax
    expected.mean().backward()
    sharded = ShardedCandidate(sharded_model, Launch())
    ours = sharded.per_row_loss(rows, windows, targets)
    ours.mean().backward()
    torch.testing.assert_close(ours.detach(), expected.detach(), rtol=1e-5, atol=1e-6)
    for (name, mine), (_, theirs) in zip(
        sharded_model.named_parameters(), reference.named_parameters(), strict=True
    ):
        assert mine.grad is not None and theirs.grad is not None, name
        torch.testing.assert_close(mine.grad, theirs.grad, rtol=1e-4, atol=1e-7, msg=name)


def test_sharded_candidate_needs_the_full_softmax() -> None:
    split = small_split()
    model = CandidateModel(
        CandidateConfig(n_items=split.n_items, objective="sampled", tie_embeddings=False)
    )
    with pytest.raises(CrossentError, match=r'objective = "sampled": training on several'):
        ShardedCandidate(model, Launch())


@pytest.fixture(scope="module")
def single_process_fit() -> dict[str, Any]:
    split = small_split()
    model = fresh_model(split)
    history = fit_candidate(model, split, TRAIN, progress=False)
    return {
        "history": history,
        "state": model.state_dict(),
        "test_bits": retrieval_cross_entropy(model, split, "test")["bits"],
    }


def _two_rank_training(world_results: Any) -> list[dict[str, Any]]:
    world_size, results = world_results
    if world_size != 2:
        pytest.skip("the training run uses 2 ranks")
    return [result["training"] for result in results]


def test_two_rank_training_reports_the_single_process_metrics(
    world_results: Any, single_process_fit: dict[str, Any]
) -> None:
    ranks = _two_rank_training(world_results)
    history = single_process_fit["history"]
    for result in ranks:  # every rank saw the same losses and stopped at the same epoch
        assert result["best_epoch"] == history.best_epoch
        assert result["train_bits"] == pytest.approx(history.train_bits, rel=1e-5)
        assert result["valid_bits"] == pytest.approx(history.valid_bits, rel=1e-5)
    assert ranks[0]["test_bits"] == pytest.approx(single_process_fit["test_bits"], rel=1e-5)


def test_two_rank_training_gathers_the_single_process_model_on_rank_0_only(
    world_results: Any, single_process_fit: dict[str, Any]
) -> None:
    ranks = _two_rank_training(world_results)
    assert ranks[0]["has_model"] and not ranks[1]["has_model"]
    gathered, expected = ranks[0]["state"], single_process_fit["state"]
    assert gathered.keys() == expected.keys()
    for name, value in expected.items():
        assert gathered[name].shape == value.shape, name
        torch.testing.assert_close(gathered[name], value, rtol=1e-4, atol=1e-5, msg=name)


@pytest.mark.slow
def test_torchrun_train_saves_the_single_process_checkpoint(tmp_path: Path) -> None:
    torchrun = Path(sys.executable).with_name("torchrun")
    if not torchrun.exists():
        pytest.skip(f"no torchrun next to {sys.executable}")
    options = ["train", "--data", "simulated", "--users", "60", "--videos", "120",
               "--epochs", "2", "--dim", "8", "--history", "5", "--batch-size", "64",
               "--seed", "1", "--dropout", "0"]
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    launched = subprocess.run(
        [str(torchrun), "--standalone", "--nproc-per-node", "2", "-m", "crossent", *options,
         "--out", str(tmp_path / "two_ranks")],
        env=environment, capture_output=True, text=True, timeout=600, check=False,
    )
    assert launched.returncode == 0, launched.stdout[-3000:] + launched.stderr[-3000:]
    assert launched.stdout.count("saved ") == 1  # rank 0 alone reports and saves
    # torchrun's default is a separate output table (the sharded one); one process is told
    single = CliRunner().invoke(
        app, [*options, "--separate-embeddings", "--out", str(tmp_path / "one_process")]
    )
    assert single.exit_code == 0, single.output
    two_ranks = load_checkpoint(tmp_path / "two_ranks")
    one_process = load_checkpoint(tmp_path / "one_process")
    assert two_ranks.metrics.keys() == one_process.metrics.keys()
    for table, values in one_process.metrics.items():
        for name, value in values.items():
            assert two_ranks.metrics[table][name] == pytest.approx(value, rel=1e-4, abs=1e-6), (
                table, name)
    expected_state = one_process.candidate.state_dict()
    for name, value in two_ranks.candidate.state_dict().items():
        torch.testing.assert_close(value, expected_state[name], rtol=1e-4, atol=1e-5, msg=name)


def test_non_finite_weight_row_is_found_in_any_block_of_rows() -> None:
    from crossent.distributed._checks import _first_non_finite_row

    values = torch.zeros(10, 3)
    assert _first_non_finite_row(values, block_elements=6) is None
    values[7, 1] = math.nan
    values[9, 0] = math.inf
    assert _first_non_finite_row(values, block_elements=6) == 7  # third block of 2 rows
