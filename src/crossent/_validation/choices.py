"""The option vocabularies, declared once as ``Literal`` types, and the check against them.

Every module that takes one of these options imports its type from here, and
:func:`check_choice` reads the valid values from the type itself (``typing.get_args``), so the
annotation, the check and the message cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, TypeVar, get_args

from crossent.errors import OptionError

Reduction = Literal["none", "sum", "mean"]
Smoothing = Literal["uniform", "off_target"]
InputKind = Literal["logits", "log_probs", "probs"]
BinaryInputKind = Literal["logits", "probs"]
Implementation = Literal["auto", "reference", "fused"]
FocalMode = Literal["multiclass", "binary"]
BinStrategy = Literal["uniform", "quantile"]
TargetKind = Literal["index", "probs"]

# the recommender's vocabularies (here, not in crossent.recsys, so the CLI reads them without torch)
CandidateKind = Literal["sequence", "bag"]
#: what a saved candidate model can be: a trained kind, or a sequence model blended with its bag
SavedCandidateKind = Literal["sequence", "bag", "blend"]
EncoderBlock = Literal["sasrec", "pre-norm"]
Objective = Literal["full", "sampled", "bce", "gbce", "in-batch"]
RankingLoss = Literal["bce", "focal", "watch-time"]
DataFormat = Literal["auto", "movielens", "recbole", "sasrec", "csv", "parquet"]
StageName = Literal["retrieval", "ranking"]
LrSchedule = Literal["constant", "cosine"]

T = TypeVar("T")


def choices_of(literal: Any) -> tuple[str, ...]:
    """The values of a ``Literal[...]`` type, in declaration order."""
    return tuple(get_args(literal))


def not_a_choice(name: str, value: object, choices: Sequence[str]) -> OptionError:
    """The one wording of "not a valid choice", for a keyword or a command-line option.

    A keyword shows Python literals; an option (a name starting with ``--``) shows the values
    as they are typed on a command line.

    Example:
        >>> print(not_a_choice("reduction", "avg", ("none", "sum", "mean")))
        reduction = 'avg' is not one of 'none', 'sum', 'mean'
        >>> print(not_a_choice("--model", "tree", ("mlp", "linear")))
        --model 'tree' is not one of mlp, linear
    """

    def describe(name: str) -> str:
        if name.startswith("--"):
            return f"{name} {value!r} is not one of {', '.join(choices)}"
        listed = ", ".join(repr(choice) for choice in choices)
        return f"{name} = {value!r} is not one of {listed}"

    return OptionError(name, describe)


def check_choice(value: object, name: str, literal: Any) -> Any:
    """``value`` if it is one of the values of ``literal``; otherwise :func:`not_a_choice`.

    Message: ``reduction = 'avg' is not one of 'none', 'sum', 'mean'``.
    """
    choices = choices_of(literal)
    if not isinstance(value, str) or value not in choices:
        raise not_a_choice(name, value, choices)
    return value
