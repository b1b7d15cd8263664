"""The CLI shell: every command's help, the both-spellings choice options, one-line errors."""

from __future__ import annotations

from typing import Annotated, Literal

import pytest
import typer
from typer.testing import CliRunner, Result

from crossent.cli import _Group, app
from crossent.cli._options import choices_of, each_of, listed, one_of
from crossent.cli.bench import Suite
from crossent.errors import CrossentError

COMMANDS = ("demo", "tour", "score", "bench", "lab", "train", "evaluate", "recommend", "convert")


def test_help_lists_every_command_with_its_summary() -> None:
    result = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for command in COMMANDS:
        assert command in result.output
    assert "Time fused cross-entropy" in result.output  # bench's docstring is its help


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_that_exits_0(command: str) -> None:
    result = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert f"crossent {command}" in result.output or "Usage:" in result.output
    assert "--help" in result.output


def test_no_arguments_prints_usage() -> None:
    result = CliRunner().invoke(app, [])
    assert "Usage:" in result.output


# a small app on the same group, to test the choice callbacks in isolation
Negatives = Literal["full", "sampled", "in-batch"]
_probe = typer.Typer(cls=_Group, pretty_exceptions_enable=False)


@_probe.callback()
def _probe_root() -> None:
    """Probe."""


@_probe.command("choose")
def _choose(
    negatives: Annotated[str, typer.Option(callback=one_of(Negatives))] = "full",
    dataset: Annotated[
        str | None, typer.Option(callback=one_of(("digits", "breast_cancer")))
    ] = None,
    losses: Annotated[str, typer.Option(callback=each_of(("ce", "label_smoothing")))] = "ce",
) -> None:
    typer.echo(f"{negatives}|{dataset}|{losses}")


def _choose_with(*args: str) -> Result:
    return CliRunner().invoke(_probe, ["choose", *args])


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ((), "full|None|ce"),
        (("--negatives", "in-batch"), "in-batch|None|ce"),
        (("--negatives", "in_batch"), "in-batch|None|ce"),
        (("--dataset", "breast-cancer"), "full|breast_cancer|ce"),
        (("--dataset", "breast_cancer"), "full|breast_cancer|ce"),
        (("--losses", "label-smoothing, ce"), "full|None|label_smoothing,ce"),
    ],
)
def test_choices_accept_both_spellings_and_reach_the_command_in_the_library_spelling(
    args: tuple[str, ...], expected: str
) -> None:
    result = _choose_with(*args)
    assert result.exit_code == 0, result.output
    assert result.output.strip() == expected


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--negatives", "all"), "--negatives 'all' is not one of full, sampled, in-batch"),
        (("--dataset", "iris"), "--dataset 'iris' is not one of digits, breast_cancer"),
        (("--losses", "ce,hinge"), "--losses 'hinge' is not one of ce, label_smoothing"),
    ],
)
def test_unknown_choice_is_one_line_exit_2_listing_the_valid_ones(
    args: tuple[str, ...], message: str
) -> None:
    result = _choose_with(*args)
    assert result.exit_code == 2
    assert result.output.strip() == f"error: {message}"


def test_choices_come_from_a_literal_or_a_tuple() -> None:
    assert choices_of(Suite) == ("cross-entropy", "linear", "all")
    assert choices_of(("a", "b")) == ("a", "b")
    assert listed(Suite) == "cross-entropy, linear or all"
    assert listed(("only",)) == "only"


def test_the_group_turns_a_library_error_into_one_line_and_exit_2() -> None:
    probe = typer.Typer(cls=_Group, pretty_exceptions_enable=False)

    @probe.callback()
    def root() -> None:
        """Probe."""

    @probe.command()
    def fail() -> None:
        raise CrossentError("bins = 0 must be >= 1")

    result = CliRunner().invoke(probe, ["fail"])
    assert result.exit_code == 2
    assert result.output == "error: bins = 0 must be >= 1\n"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["train", "--data", "simulated", "--out", "OUT", "--model", "bags"],
         "--model 'bags' is not one of sequence, bag"),
        (["train", "--data", "simulated", "--out", "OUT", "--loss", "full,in_batch,gbse"],
         "--loss 'gbse' is not one of full, sampled, bce, gbce, in-batch, focal, watch-time"),
        (["train", "--data", "simulated", "--out", "OUT", "--format", "movie_lens"],
         "--format 'movie_lens' is not one of auto, movielens, recbole, sasrec, csv, parquet"),
        (["demo", "--model", "seq"], "--model 'seq' is not one of sequence, bag"),
        (["evaluate", "--model", "M", "--data", "D", "--format", "tsv"],
         "--format 'tsv' is not one of auto, movielens, recbole, sasrec, csv, parquet"),
    ],
)
def test_recommender_commands_reject_an_unknown_choice_before_any_work(
    arguments: list[str], message: str, tmp_path
) -> None:
    arguments = [str(tmp_path / "out") if value == "OUT" else value for value in arguments]
    result = CliRunner().invoke(app, arguments)
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "out").exists()

