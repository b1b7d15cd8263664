"""Scores for probabilistic predictions: log loss, entropy, normalized entropy, perplexity, Brier.

Shapes, shared by every function here:

- binary: ``probs`` (N,) = P(y = 1) (or ``input_kind="logits"``: the logit of that), with
  ``target`` (N,) in {0, 1} (or any two labels named by ``labels=[negative, positive]``);
- multi-class: ``probs`` (N, C), rows summing to 1 (or logits), with ``target`` (N,) integer
  class indices in [0, C) (or values of ``labels``, the class of each column, in column order).

Argument order is crossent's (predictions first, then target, as in :mod:`crossent.losses`
and torchmetrics), the reverse of scikit-learn's ``(y_true, y_pred)``. ``sample_weight`` (N,)
weights rows. Results in nats unless ``base`` says otherwise (``"bits"`` or a number > 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from crossent._validation import arrays as checks
from crossent._validation.arrays import FloatArray, IntArray
from crossent._validation.choices import BinaryInputKind as InputKind
from crossent._validation.choices import Reduction, check_choice
from crossent.errors import CrossentError
from crossent.units import Base, log_divisor


@dataclass(frozen=True)
class Prepared:
    """Validated predictions: float array, class indices, weights (or None)."""

    scores: FloatArray
    target: IntArray
    weight: FloatArray | None

    @property
    def n_classes(self) -> int:
        return 2 if self.scores.ndim == 1 else int(self.scores.shape[1])


def prepare(
    predictions: ArrayLike, target: ArrayLike, *, labels: ArrayLike | None = None,
    sample_weight: ArrayLike | None = None, input_kind: InputKind = "probs",
) -> Prepared:
    """Check predictions, target and weights once; the arithmetic after this trusts them."""
    check_choice(input_kind, "input_kind", InputKind)
    if input_kind == "probs":
        scores = checks.probabilities(predictions, "probs")
    else:
        scores = checks.float_array(predictions, "logits", ndims=(1, 2))
    n_classes = 2 if scores.ndim == 1 else scores.shape[1]
    indices = checks.class_indices(target, n_classes, labels=labels)
    checks.check_length(indices, "target", scores.shape[0], input_kind)
    weight = checks.sample_weight(sample_weight, scores.shape[0], input_kind)
    return Prepared(scores, indices, weight)


def row_log_loss(prepared: Prepared, input_kind: InputKind) -> FloatArray:
    """Per-row cross-entropy in nats, probabilities clipped to [eps, 1 - eps] like sklearn."""
    scores, target = prepared.scores, prepared.target
    rows = np.arange(scores.shape[0])
    if input_kind == "logits":
        logits = scores.astype(np.float64, copy=False)
        if logits.ndim == 1:
            # softplus(-z) for y = 1, softplus(z) for y = 0: logaddexp keeps large logits finite
            signed = np.where(target == 1, -logits, logits)
            return np.logaddexp(0.0, signed)
        # log-sum-exp with max shift, never exp then log
        shift = logits.max(axis=1)
        log_normaliser = shift + np.log(np.exp(logits - shift[:, None]).sum(axis=1))
        return log_normaliser - logits[rows, target]
    eps = np.finfo(scores.dtype).eps
    if scores.ndim == 1:
        chosen = np.where(target == 1, scores, 1 - scores)  # 1 - p in the input dtype, as sklearn
    else:
        chosen = scores[rows, target]
    # chosen is a fresh array: clip, log and negate in place (float64 inputs make no copy)
    chosen = np.clip(chosen, eps, 1 - eps, out=chosen).astype(np.float64, copy=False)
    np.log(chosen, out=chosen)
    return np.negative(chosen, out=chosen)


def weighted_total(values: FloatArray, weight: FloatArray | None) -> tuple[float, float]:
    """``(sum_i w_i v_i, sum_i w_i)``, every ``w_i = 1`` without weights."""
    total = float(np.sum(values) if weight is None else np.dot(values, weight))
    count = float(values.shape[0] if weight is None else weight.sum())
    return total, count


def reduce(
    values: FloatArray, weight: FloatArray | None, reduction: Reduction
) -> float | FloatArray:
    """Weighted mean, weighted sum, or the weighted per-row values."""
    check_choice(reduction, "reduction", Reduction)
    if reduction == "none":
        return values if weight is None else values * weight
    total, count = weighted_total(values, weight)
    if reduction == "sum":
        return total
    if count == 0:
        raise CrossentError("the input is empty: there is no row to average")
    return total / count


def log_loss(
    probs: ArrayLike,
    target: ArrayLike,
    *,
    labels: ArrayLike | None = None,
    sample_weight: ArrayLike | None = None,
    base: Base = "nats",
    input_kind: InputKind = "probs",
    reduction: Reduction = "mean",
) -> float | FloatArray:
    """Log loss (cross-entropy) of predicted probabilities against observed labels.

    .. math::
        \\mathrm{LL} = -\\frac{1}{\\sum_i w_i} \\sum_i w_i \\log q_{i, y_i} \\,/\\, \\ln b

    where ``q`` is ``probs`` clipped to [eps, 1 - eps] (eps = machine epsilon of the input
    dtype, as scikit-learn >= 1.5 does), or ``softmax(logits)`` (``sigmoid`` for binary)
    computed without clipping when ``input_kind="logits"``. Equals
    ``sklearn.metrics.log_loss(target, probs, sample_weight=...)`` for ``base="nats"``.

    Args:
        probs: (N,) P(y = 1) or (N, C) class probabilities (or logits, see ``input_kind``).
        target: (N,) labels; see the module docstring.
        labels: the label of each class/column, if ``target`` does not hold indices.
        sample_weight: (N,) non-negative row weights.
        base: ``"nats"``, ``"bits"`` or a number > 1.
        reduction: ``"mean"`` (weighted), ``"sum"`` (weighted) or ``"none"`` (per row, times
            its weight).

    Raises:
        CrossentError: probabilities outside [0, 1], non-finite values, labels outside the
            classes, mismatched lengths, negative weights. Rows of ``probs`` not summing to 1
            warn (``UserWarning``), as in scikit-learn; they are never renormalised silently.

    >>> round(log_loss([0.9, 0.2], [1, 0], base="bits"), 6)
    0.236966
    """
    prepared = prepare(
        probs, target, labels=labels, sample_weight=sample_weight, input_kind=input_kind
    )
    values = row_log_loss(prepared, input_kind)
    result = reduce(values, prepared.weight, reduction)
    return result / log_divisor(base)


def class_prior(target: IntArray, weight: FloatArray | None, n_classes: int) -> FloatArray:
    """Weighted class frequencies of ``target`` (sums to 1)."""
    counts = np.bincount(target, weights=weight, minlength=n_classes).astype(np.float64)
    total = counts.sum()
    if total <= 0:
        raise CrossentError("the input is empty: there is no row to take a class prior from")
    return counts / total


def prior_entropy(prior: FloatArray) -> float:
    """Entropy (nats) of a class distribution, 0 log 0 = 0."""
    positive = prior[prior > 0]
    return float(-np.sum(positive * np.log(positive))) + 0.0  # + 0.0 turns -0.0 into 0.0


def normalized_entropy(
    probs: ArrayLike, target: ArrayLike, *, labels: ArrayLike | None = None,
    sample_weight: ArrayLike | None = None, input_kind: InputKind = "probs",
) -> float:
    """Normalized entropy: log loss divided by the entropy of the observed class prior.

    .. math::
        \\mathrm{NE} = \\frac{\\mathrm{LL}}{-\\sum_c \\pi_c \\log \\pi_c},
        \\qquad \\pi_c = \\frac{\\sum_i w_i [y_i = c]}{\\sum_i w_i}

    For binary targets the denominator is the entropy of the base rate (the background CTR),
    so NE < 1 means the model beats always predicting the base rate. Unit-free (the base
    cancels).

    Raises:
        CrossentError: only one class occurs in ``target`` (the prior entropy is 0, so NE is
            undefined), plus every error of :func:`log_loss`.

    >>> round(normalized_entropy([0.5, 0.5], [0, 1]), 6)
    1.0

    References: He et al. (2014), Practical Lessons from Predicting Clicks on Ads at Facebook.
    """
    prepared = prepare(
        probs, target, labels=labels, sample_weight=sample_weight, input_kind=input_kind
    )
    loss = reduce(row_log_loss(prepared, input_kind), prepared.weight, "mean")
    denominator = prior_entropy(class_prior(prepared.target, prepared.weight, prepared.n_classes))
    return normalized_from(float(loss), denominator)


def normalized_from(loss_nats: float, prior_entropy_nats: float) -> float:
    """``loss / prior entropy``, raising when the prior has a single class."""
    if prior_entropy_nats <= 0:
        raise CrossentError(
            "target holds a single class, so the entropy of the class prior is 0 and "
            "normalized entropy is undefined"
        )
    return loss_nats / prior_entropy_nats


def perplexity(
    probs: ArrayLike, target: ArrayLike, *, labels: ArrayLike | None = None,
    sample_weight: ArrayLike | None = None, input_kind: InputKind = "probs",
) -> float:
    """Perplexity: ``exp`` of the log loss in nats (the effective number of equally likely choices).

    >>> perplexity([[0.25, 0.25, 0.25, 0.25]], [2])
    4.0
    """
    loss = log_loss(
        probs, target, labels=labels, sample_weight=sample_weight, input_kind=input_kind
    )
    return float(np.exp(loss))


def entropy(
    probs: ArrayLike,
    *,
    sample_weight: ArrayLike | None = None,
    base: Base = "nats",
    reduction: Reduction = "mean",
) -> float | FloatArray:
    """Entropy of each predicted distribution, averaged over rows.

    .. math::
        H(q_i) = -\\sum_c q_{ic} \\log q_{ic} \\quad (0 \\log 0 = 0)

    For the true distribution this is the best achievable cross-entropy; for a model's
    predictions it measures their confidence. ``probs`` (N,) is Bernoulli P(y = 1).

    >>> entropy([0.5], base="bits")
    1.0
    """
    prob_array = checks.probabilities(probs, "probs").astype(np.float64)
    weight = checks.sample_weight(sample_weight, prob_array.shape[0])
    if prob_array.ndim == 1:
        prob_array = np.stack([1 - prob_array, prob_array], axis=1)
    positive = np.where(prob_array > 0, prob_array, 1.0)
    values = -np.sum(prob_array * np.log(positive), axis=1)
    return reduce(values, weight, reduction) / log_divisor(base)


def row_brier(prepared: Prepared) -> FloatArray:
    """Per-row Brier score (binary: (p - y)^2; C classes: sum_c (q_c - t_c)^2, halved if C = 2)."""
    scores, target = prepared.scores.astype(np.float64), prepared.target
    if scores.ndim == 1:
        return (scores - target) ** 2
    squared = scores**2
    rows = np.arange(scores.shape[0])
    total = squared.sum(axis=1) - 2 * scores[rows, target] + 1
    return total / 2 if scores.shape[1] == 2 else total


def brier_score(
    probs: ArrayLike, target: ArrayLike, *, labels: ArrayLike | None = None,
    sample_weight: ArrayLike | None = None, reduction: Reduction = "mean",
) -> float | FloatArray:
    """Brier score: mean squared distance between predicted and one-hot observed outcome.

    .. math::
        \\mathrm{BS} = \\frac{1}{\\sum_i w_i} \\sum_i w_i \\sum_c (q_{ic} - [y_i = c])^2

    Binary (1-D ``probs``) is ``mean (p - y)^2`` (a 2-column input gives the same number);
    for C >= 3 classes the original multi-class form (Brier 1950). Both match
    ``sklearn.metrics.brier_score_loss``.

    >>> round(brier_score([0.9, 0.2], [1, 0]), 12)
    0.025
    """
    prepared = prepare(probs, target, labels=labels, sample_weight=sample_weight)
    return reduce(row_brier(prepared), prepared.weight, reduction)


def probs_from_logits(logits: ArrayLike) -> FloatArray:
    """Sigmoid of (N,) logits, or row-wise softmax of (N, C) logits, computed stably."""
    logit_array = checks.float_array(logits, "logits", ndims=(1, 2)).astype(np.float64)
    if logit_array.ndim == 1:
        # sigmoid via exp of a non-positive number only: no overflow for large |z|
        exp_neg = np.exp(-np.abs(logit_array))
        return np.where(logit_array >= 0, 1 / (1 + exp_neg), exp_neg / (1 + exp_neg))
    shifted = np.exp(logit_array - logit_array.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)
