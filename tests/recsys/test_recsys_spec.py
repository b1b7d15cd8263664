"""The run spec and its result: frozen, validated once, errors in the caller's own words."""

from __future__ import annotations

import dataclasses

import pytest
import typer.main

from crossent.cli import app
from crossent.errors import CrossentError, OptionError
from crossent.recsys import defaults
from crossent.recsys.data.interactions import Interactions, leave_last_out
from crossent.recsys.models.networks import CandidateConfig, CandidateModel
from crossent.recsys.results import RunResult
from crossent.recsys.spec import OPTION_NAMES, DataSpec, ModelSpec, RunSpec, TrainingSpec
from crossent.recsys.training.loop import TrainConfig


def _train_options() -> set[str]:
    command = typer.main.get_command(app).commands["train"]  # type: ignore[attr-defined]
    return {name for param in command.params for name in param.opts}


def test_every_option_name_is_an_option_of_crossent_train() -> None:
    assert set(OPTION_NAMES.values()) <= _train_options()


def test_the_default_spec_is_the_default_model_and_schedule() -> None:
    spec = RunSpec()
    assert spec.model.candidate(n_items=7, objective="full") == CandidateConfig(n_items=7)
    assert spec.training.schedule == TrainConfig()
    assert spec.training.catch_up == defaults.CATCH_UP and not spec.training.refit
    assert spec.objective.retrieval == ("full",) and spec.stage == "retrieval"
    assert spec.data.eval_users == defaults.EVAL_USERS
    # the saved model's bag weight: chosen on validation unless given
    assert spec.training.blend is None
    assert spec.training.blend_weights() == defaults.BLEND_WEIGHTS
    assert TrainingSpec(blend=0.25).blend_weights() == (0.25,)


def test_the_spec_is_frozen() -> None:
    spec = RunSpec()
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.stage = "ranking"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.model.history = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    ("options", "keyword_error", "option_error"),
    [
        ({"history": 0}, "history = 0 must be an integer >= 1",
         "--history = 0 must be an integer >= 1"),
        ({"dropout": 1.5}, "dropout = 1.5 is outside [0, 1)", "--dropout = 1.5 is outside [0, 1)"),
        ({"catch_up": -1}, "catch_up = -1 must be an integer >= 0",
         "--catch-up = -1 must be an integer >= 0"),
        ({"lr_schedule": "step"}, "lr_schedule = 'step' is not one of 'constant', 'cosine'",
         "--lr-schedule 'step' is not one of constant, cosine"),
        ({"format": "xml"}, "format = 'xml' is not one of", "--format 'xml' is not one of"),
        ({"eval_users": -1}, "eval_users = -1 must be an integer >= 0",
         "--eval-users = -1 must be an integer >= 0"),
        ({"blend": 1.0}, "blend = 1.0 is outside [0, 1)", "--blend = 1.0 is outside [0, 1)"),
    ],
)
def test_a_keyword_error_is_renamed_to_the_option_at_the_boundary(
    options, keyword_error, option_error
) -> None:
    (name, value), = options.items()
    section = {"history": ModelSpec, "dropout": ModelSpec, "catch_up": TrainingSpec,
               "lr_schedule": TrainConfig, "format": DataSpec, "eval_users": DataSpec,
               "blend": TrainingSpec}[name]
    with pytest.raises(OptionError) as keyword:
        section(**{name: value})
    assert str(keyword.value).startswith(keyword_error) and keyword.value.name == name
    with pytest.raises(OptionError) as option:
        RunSpec.from_options(**options)
    assert str(option.value).startswith(option_error)


def test_losses_are_parsed_per_stage() -> None:
    assert RunSpec.from_options(loss="full,gbce").objective.retrieval == ("full", "gbce")
    assert RunSpec.from_options(loss="").objective.retrieval == ("full",)
    ranking = RunSpec.from_options(stage="ranking", loss="focal")
    assert ranking.objective.ranking == "focal" and ranking.objective.retrieval == ("full",)
    with pytest.raises(CrossentError, match="--loss 'focal' is not one of full"):
        RunSpec.from_options(loss="focal")
    with pytest.raises(CrossentError, match="--loss takes one ranking loss"):
        RunSpec.from_options(stage="ranking", loss="bce,focal")
    with pytest.raises(CrossentError, match="--loss is empty"):
        RunSpec.from_options(loss=",")


def test_an_unknown_option_is_a_programming_error() -> None:
    with pytest.raises(TypeError, match="histroy"):
        RunSpec.from_options(histroy=5)


def _result() -> RunResult:
    watches = Interactions.from_arrays([0, 0, 0, 1, 1, 1], [0, 1, 2, 2, 1, 0])
    model = CandidateModel(CandidateConfig(n_items=3, dim=4, history=2))
    return RunResult(watches, leave_last_out(watches), model, retrieval={"model": {"HR@10": 1.0}})


def test_a_result_cannot_be_changed_in_place() -> None:
    result = _result()
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.candidate = result.candidate  # type: ignore[misc]
    with pytest.raises(TypeError):
        result.retrieval["bag"] = {}  # type: ignore[index]
    with pytest.raises(TypeError):
        result.info["rank"] = 1  # type: ignore[index]


def test_adding_returns_a_new_result_and_leaves_the_first_as_it_was() -> None:
    first = _result()
    second = first.adding(retrieval={"bag": {"HR@10": 0.5}}, info={"ease_lambda": 200.0})
    assert list(first.retrieval) == ["model"] and dict(first.info) == {}
    assert list(second.retrieval) == ["model", "bag"] and second.info["ease_lambda"] == 200.0
    assert second.candidate is first.candidate
    with pytest.raises(TypeError, match="candidate"):
        first.adding(candidate={})
