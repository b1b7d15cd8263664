"""Ranking metrics: ROC AUC for binary scores, and top-k retrieval metrics over a catalogue.

Retrieval metrics take a full score matrix ``scores`` (n_users, n_items), one row per user and
one column per item, and a ``target`` that is either

- an integer vector (n_users,): one held-out relevant item per row (leave-last-out), or
- a boolean relevance matrix (n_users, n_items): any number of relevant items per row.

``exclude`` removes items before ranking (typically what the user already watched). It is
``None``, a boolean matrix like ``scores``, a ``scipy.sparse`` matrix (non-zero = excluded;
pass the same rows as ``scores`` when scoring in chunks), or a sequence with one array of item
indices per row. Excluded items neither take a top-k slot nor count as relevant; a relevant
item that is also excluded is an error (it usually means the evaluation leaks history).

Ties are broken pessimistically: an item ranks below every other item of equal score that is
not relevant, so a constant scorer gets no credit for ties. Rank positions are 0-based; the
discount for position r is ``1 / log2(r + 2)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from crossent._validation import arrays as checks
from crossent._validation.arrays import FloatArray
from crossent._validation.choices import Reduction, check_choice
from crossent._validation.numbers import check_int
from crossent.errors import CrossentError

# a boolean mask, a scipy.sparse matrix, one index array per row, or None (see module doc)
ExcludeInput = Any


def auc_from_counts(positive: NDArray[Any], negative: NDArray[Any]) -> float:
    """AUC from (weighted) positive and negative counts per score value, ascending by score.

    Pairs in the same group count one half (the trapezoid rule, as scikit-learn).
    """
    total_positive = float(positive.sum())
    total_negative = float(negative.sum())
    if total_positive <= 0 or total_negative <= 0:
        which = "positive" if total_positive <= 0 else "negative"
        raise CrossentError(
            f"target has no {which} rows, so ROC AUC is undefined (it needs both classes)"
        )
    negative_below = np.cumsum(negative) - negative
    concordant = np.dot(positive, negative_below + 0.5 * negative)
    return float(concordant / (total_positive * total_negative))


def roc_auc(
    scores: ArrayLike,
    target: ArrayLike,
    *,
    labels: ArrayLike | None = None,
    sample_weight: ArrayLike | None = None,
) -> float:
    """Area under the ROC curve of binary ``scores`` (any monotone score: probability, logit).

    The probability that a random positive scores above a random negative, ties counting one
    half, computed exactly from sorted distinct scores; equals
    ``sklearn.metrics.roc_auc_score(target, scores, sample_weight=...)``.

    Args:
        scores: (N,) finite scores; larger means more likely positive.
        target: (N,) in {0, 1}, or two labels named by ``labels=[negative, positive]``.
        sample_weight: (N,) non-negative weights.

    Raises:
        CrossentError: only one class present, non-finite scores, bad labels or weights.

    >>> roc_auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
    0.75
    """
    score_array = checks.float_array(scores, "scores", ndims=(1,))
    indices = checks.class_indices(target, 2, labels=labels)
    checks.check_length(indices, "target", score_array.shape[0], "scores")
    weight = checks.sample_weight(sample_weight, score_array.shape[0], "scores")
    if weight is None:
        weight = np.ones(score_array.shape[0])
    distinct, group = np.unique(score_array, return_inverse=True)
    positive = np.bincount(group, weights=weight * indices, minlength=distinct.shape[0])
    negative = np.bincount(group, weights=weight * (1 - indices), minlength=distinct.shape[0])
    return auc_from_counts(positive, negative)


def _check_shape(actual: Sequence[int], name: str, expected: tuple[int, int]) -> None:
    """Raise unless an (n_users, n_items) argument has the shape of ``scores``."""
    if tuple(actual) != expected:
        raise CrossentError(f"{name} has shape {tuple(actual)}, expected {expected}")


def _exclude_mask(exclude: ExcludeInput, shape: tuple[int, int]) -> NDArray[np.bool_] | None:
    if exclude is None:
        return None
    if hasattr(exclude, "tocsr") and hasattr(exclude, "toarray"):  # scipy.sparse
        _check_shape(exclude.shape, "exclude", shape)
        return np.asarray(exclude.toarray() != 0)
    if isinstance(exclude, np.ndarray) and exclude.ndim == 2:
        _check_shape(exclude.shape, "exclude", shape)
        if exclude.dtype.kind != "b":
            raise CrossentError(
                f"exclude has dtype {exclude.dtype}; pass a boolean mask, a scipy.sparse "
                "matrix, or one array of item indices per row"
            )
        return exclude
    if len(exclude) != shape[0]:
        raise CrossentError(f"exclude has {len(exclude)} rows but scores has {shape[0]}")
    mask = np.zeros(shape, dtype=bool)
    for row, items in enumerate(exclude):
        index = np.asarray(items, dtype=np.int64).ravel()
        outside = (index < 0) | (index >= shape[1])
        if outside.any():
            bad = index[int(np.argmax(outside))]
            raise CrossentError(
                f"exclude row {row} holds item {bad}, outside [0, {shape[1]}) (n_items)"
            )
        mask[row, index] = True
    return mask


def _relevance(target: ArrayLike, shape: tuple[int, int]) -> NDArray[Any]:
    """Integer (n_users,) item indices, or a boolean (n_users, n_items) relevance matrix."""
    target_array = np.asarray(target)
    if target_array.ndim == 2:
        _check_shape(target_array.shape, "target", shape)
        if target_array.dtype.kind != "b":
            if not np.isin(target_array, (0, 1)).all():
                raise CrossentError("a 2-D target must be a boolean (or 0/1) relevance matrix")
            target_array = target_array != 0
        return target_array
    if target_array.ndim != 1:
        raise CrossentError(
            f"target has shape {target_array.shape}; expected (n_users,) item indices or an "
            f"(n_users, n_items) relevance matrix"
        )
    indices = checks.class_indices(target_array, shape[1])
    checks.check_length(indices, "target", shape[0], "scores")
    return indices


def _discounts(length: int) -> FloatArray:
    """Cumulative DCG discounts: ``out[j] = sum_{r < j} 1 / log2(r + 2)``."""
    return np.concatenate([[0.0], np.cumsum(1.0 / np.log2(np.arange(length) + 2.0))])


def ranking_metrics(
    scores: ArrayLike,
    target: ArrayLike,
    *,
    ks: Sequence[int] = (10,),
    exclude: ExcludeInput = None,
    reduction: Reduction = "mean",
) -> dict[str, Any]:
    """Hit rate, recall and NDCG at each ``k`` in ``ks``, and MRR, in one pass over ``scores``.

    Returns a dict with keys ``"hit@k"``, ``"recall@k"``, ``"ndcg@k"`` for each k, and
    ``"mrr"``; values are the mean over rows (``reduction="mean"``), the sum (``"sum"``, what
    a streaming accumulator adds up) or per-row arrays (``"none"``). See the module docstring
    for ``target``, ``exclude`` and ties; the single functions below document each metric.

    Raises:
        CrossentError: non-finite scores, target items outside the catalogue, a row with no
            relevant item, a relevant item that is also excluded, bad ``k``.
    """
    score_array = checks.float_array(scores, "scores", ndims=(2,))  # float32 stays float32
    shape = (int(score_array.shape[0]), int(score_array.shape[1]))
    ks = check_ks(ks)
    check_choice(reduction, "reduction", Reduction)
    relevance = _relevance(target, shape)
    excluded = _exclude_mask(exclude, shape)
    if relevance.ndim == 1:
        per_row = _single_target(score_array, relevance, ks, excluded)
    else:
        per_row = _relevance_matrix(score_array, relevance, ks, excluded)
    if reduction == "none":
        return per_row
    return {name: _reduce_rows(values, reduction) for name, values in per_row.items()}


def check_ks(ks: Sequence[int]) -> tuple[int, ...]:
    """The cut-offs ``ks`` as ints, each >= 1; at least one."""
    checked = tuple(check_int(k, "k", low=1) for k in ks)
    if not checked:
        raise CrossentError("ks is empty; pass at least one cut-off k")
    return checked


def _reduce_rows(values: FloatArray, reduction: Reduction) -> float | FloatArray:
    """Per-row values as they are (``"none"``), summed, or averaged over rows."""
    if reduction == "none":
        return values
    if reduction == "sum":
        return float(values.sum())
    if values.shape[0] == 0:
        raise CrossentError("scores has no rows: there is no user to average over")
    return float(values.mean())


def _single_target(
    scores: FloatArray,
    items: NDArray[np.int64],
    ks: Sequence[int],
    excluded: NDArray[np.bool_] | None,
) -> dict[str, FloatArray]:
    rows = np.arange(scores.shape[0])
    if excluded is not None and excluded[rows, items].any():
        row = int(np.argmax(excluded[rows, items]))
        raise CrossentError(
            f"target[{row}] = {items[row]} is also excluded for row {row}; the held-out item "
            "must not be in the exclude mask (is history leaking into the test item?)"
        )
    target_score = scores[rows, items][:, None]  # (n_users, 1)
    ahead = scores >= target_score  # greater, or tied (pessimistic), including the target itself
    if excluded is not None:
        ahead &= ~excluded
    rank = ahead.sum(axis=1) - 1  # 0-based
    out: dict[str, FloatArray] = {}
    for k in ks:
        inside = rank < k
        out[f"hit@{k}"] = inside.astype(np.float64)
        out[f"recall@{k}"] = inside.astype(np.float64)
        out[f"ndcg@{k}"] = np.where(inside, 1.0 / np.log2(rank + 2.0), 0.0)
    out["mrr"] = 1.0 / (rank + 1.0)
    return out


def _relevance_matrix(
    scores: FloatArray, relevant: NDArray[np.bool_], ks: Sequence[int],
    excluded: NDArray[np.bool_] | None,
) -> dict[str, FloatArray]:
    n_items = scores.shape[1]
    if excluded is not None and (relevant & excluded).any():
        row, item = np.argwhere(relevant & excluded)[0]
        raise CrossentError(
            f"target[{row}, {item}] is relevant but also excluded; relevant items must not be "
            "in the exclude mask (is history leaking into the test items?)"
        )
    n_relevant = relevant.sum(axis=1)
    if (n_relevant == 0).any():
        row = int(np.argmax(n_relevant == 0))
        raise CrossentError(
            f"target row {row} has no relevant item; drop such rows before ranking evaluation"
        )
    available = np.ones_like(relevant) if excluded is None else ~excluded
    masked = np.where(available, scores, -np.inf)  # excluded items sink below every real score
    top = min(max(ks), n_items)
    # the `top` best items in pessimistic order: score descending, then irrelevant first
    candidates = np.argpartition(-masked, top - 1, axis=1)[:, :top]  # (n_users, top)
    candidate_scores = np.take_along_axis(masked, candidates, axis=1)
    candidate_relevant = np.take_along_axis(relevant, candidates, axis=1)
    order = np.lexsort((candidate_relevant, -candidate_scores), axis=1)
    sorted_scores = np.take_along_axis(candidate_scores, order, axis=1)
    sorted_relevant = np.take_along_axis(candidate_relevant, order, axis=1)
    discount = 1.0 / np.log2(np.arange(top) + 2.0)
    cumulative = _discounts(n_items)
    out: dict[str, FloatArray] = {}
    for k in ks:
        k_eff = min(k, n_items)
        threshold = sorted_scores[:, k_eff - 1][:, None]  # the k-th best score per row
        # items strictly above the threshold are all among the candidates, in true rank order
        above = sorted_scores > threshold
        n_above = above.sum(axis=1)
        relevant_above = above & sorted_relevant
        tied = (masked == threshold) & available
        tied_irrelevant = (tied & ~relevant).sum(axis=1)
        tied_relevant = (tied & relevant).sum(axis=1)
        # ties at the threshold fill the remaining slots irrelevant-first (pessimistic)
        start = np.minimum(n_above + tied_irrelevant, k_eff)
        tied_in = np.minimum(tied_relevant, k_eff - start)
        hits = relevant_above.sum(axis=1) + tied_in
        dcg = (
            (relevant_above * discount).sum(axis=1)
            + cumulative[start + tied_in]
            - cumulative[start]
        )
        ideal = cumulative[np.minimum(k, n_relevant)]
        out[f"hit@{k}"] = (hits > 0).astype(np.float64)
        out[f"recall@{k}"] = hits / n_relevant
        out[f"ndcg@{k}"] = dcg / ideal
    best_relevant = np.where(relevant, scores, -np.inf).max(axis=1)[:, None]
    first_rank = ((masked > best_relevant) & available).sum(axis=1) + (
        (masked == best_relevant) & available & ~relevant
    ).sum(axis=1)
    out["mrr"] = 1.0 / (first_rank + 1.0)
    return out


def _one_metric(
    key: str,
    scores: ArrayLike,
    target: ArrayLike,
    k: int,
    exclude: ExcludeInput,
    reduction: Reduction,
) -> Any:
    """The metric ``key`` (``"hit@{k}"``, ...) of :func:`ranking_metrics` at the one cut-off k."""
    metrics = ranking_metrics(scores, target, ks=[k], exclude=exclude, reduction=reduction)
    return metrics[key.format(k=k)]


def hit_rate_at_k(
    scores: ArrayLike,
    target: ArrayLike,
    k: int = 10,
    *,
    exclude: ExcludeInput = None,
    reduction: Reduction = "mean",
) -> float | FloatArray:
    """Share of rows with at least one relevant item among the top ``k`` scores.

    >>> hit_rate_at_k([[0.9, 0.1, 0.5], [0.2, 0.3, 0.1], [0.4, 0.6, 0.5]], [2, 1, 0], k=2)
    0.6666666666666666
    """
    return _one_metric("hit@{k}", scores, target, k, exclude, reduction)


def recall_at_k(
    scores: ArrayLike, target: ArrayLike, k: int = 10, *, exclude: ExcludeInput = None,
    reduction: Reduction = "mean",
) -> float | FloatArray:
    """Relevant items in the top ``k`` over all relevant items of the row, averaged over rows.

    The denominator is the number of relevant items (not ``min(k, n_relevant)``); with one
    held-out item per row recall@k equals hit rate@k.

    >>> recall_at_k([[0.9, 0.1, 0.5]], [[True, True, False]], k=1, reduction="none").tolist()
    [0.5]
    """
    return _one_metric("recall@{k}", scores, target, k, exclude, reduction)


def ndcg_at_k(
    scores: ArrayLike, target: ArrayLike, k: int = 10, *, exclude: ExcludeInput = None,
    reduction: Reduction = "mean",
) -> float | FloatArray:
    """Normalised discounted cumulative gain at ``k`` with binary relevance.

    .. math::
        \\mathrm{NDCG@k} = \\frac{\\sum_{r < k} \\mathrm{rel}_r / \\log_2(r + 2)}
                               {\\sum_{r < \\min(k, |R|)} 1 / \\log_2(r + 2)}

    References: Järvelin and Kekäläinen (2002), Cumulated gain-based evaluation of IR.

    >>> round(ndcg_at_k([[0.9, 0.1, 0.5]], [2], k=3), 6)
    0.63093
    """
    return _one_metric("ndcg@{k}", scores, target, k, exclude, reduction)


def mrr(
    scores: ArrayLike,
    target: ArrayLike,
    *,
    k: int | None = None,
    exclude: ExcludeInput = None,
    reduction: Reduction = "mean",
) -> float | FloatArray:
    """Mean reciprocal rank of the first relevant item over the whole catalogue.

    With ``k`` a row whose first relevant item ranks below ``k`` contributes 0 (MRR@k).

    >>> mrr([[0.9, 0.1, 0.5]], [2])
    0.5
    """
    check_choice(reduction, "reduction", Reduction)
    per_row = _one_metric("mrr", scores, target, 1 if k is None else k, exclude, "none")
    if k is not None:
        per_row = np.where(per_row >= 1.0 / k, per_row, 0.0)
    return _reduce_rows(per_row, reduction)
