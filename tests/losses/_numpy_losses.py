"""The loss definitions of docs/ARCHITECTURE.md ("Exact definitions") written out in NumPy
float64: an independent reference.

Nothing here imports crossent. Shapes: multi-class ``logits`` (N, C), ``target`` (N,) indices or
(N, C) probabilities.
"""

from __future__ import annotations

import numpy as np


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """log q = z - logsumexp(z), row-wise (max shift)."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def smoothed_target(
    target: np.ndarray,
    num_classes: int,
    label_smoothing: float,
    smoothing: str,
    ignore_index: int = -100,
) -> tuple[np.ndarray, np.ndarray]:
    """(t, kept): dense smoothed targets (N, C) and a mask of the rows that count."""
    if target.ndim == 2:
        probs = target.astype(np.float64)
        kept = np.ones(len(target), dtype=bool)
    else:
        kept = target != ignore_index
        probs = np.zeros((len(target), num_classes))
        for row, label in enumerate(target):
            if label != ignore_index:
                probs[row, label] = 1.0
    eps = label_smoothing
    if eps > 0:
        if smoothing == "uniform":
            probs = (1 - eps) * probs + eps / num_classes
        else:
            probs = (1 - eps) * probs + eps * (1 - probs) / (num_classes - 1)
    probs[~kept] = 0.0
    return probs, kept


def cross_entropy(
    logits: np.ndarray,
    target: np.ndarray,
    *,
    weight: np.ndarray | None = None,
    ignore_index: int = -100,
    label_smoothing: float = 0.0,
    smoothing: str = "uniform",
    reduction: str = "mean",
    log_q: np.ndarray | None = None,
) -> np.ndarray | float:
    """loss_i = -sum_c w_c t_ic log q_ic; mean over sum of w_{y_i} (indices) or N (probs)."""
    num_classes = logits.shape[1]
    log_q = log_softmax(logits) if log_q is None else log_q
    t, kept = smoothed_target(target, num_classes, label_smoothing, smoothing, ignore_index)
    w = np.ones(num_classes) if weight is None else weight
    safe_log_q = np.where(t > 0, log_q, 0.0)
    loss = -(w * t * safe_log_q).sum(axis=1)
    if reduction == "none":
        return loss
    if reduction == "sum":
        return float(loss.sum())
    if target.ndim == 2:
        denominator = float(len(target))
    else:
        denominator = float(sum(w[label] for label in target[kept]))
    return float(loss.sum() / denominator) if denominator > 0 else 0.0


def focal_loss(
    logits: np.ndarray,
    target: np.ndarray,
    *,
    gamma: float,
    alpha: float | np.ndarray | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> np.ndarray | float:
    """-sum_c α_c (1 - q_c)^γ t_c log q_c; mean over non-ignored rows."""
    num_classes = logits.shape[1]
    log_q = log_softmax(logits)
    q = np.exp(log_q)
    t, kept = smoothed_target(target, num_classes, 0.0, "uniform", ignore_index)
    a = np.ones(num_classes) if alpha is None else np.broadcast_to(alpha, (num_classes,))
    loss = -(a * (1 - q) ** gamma * t * log_q).sum(axis=1)
    if reduction == "none":
        return loss
    if reduction == "sum":
        return float(loss.sum())
    return float(loss.sum() / kept.sum())


def sigmoid(logits: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-logits))


def binary_cross_entropy(
    probs: np.ndarray,
    target: np.ndarray,
    *,
    weight: np.ndarray | None = None,
    pos_weight: np.ndarray | None = None,
    reduction: str = "mean",
) -> np.ndarray | float:
    """-w [pw y log p + (1 - y) log(1 - p)], element-wise."""
    pw = 1.0 if pos_weight is None else pos_weight
    w = 1.0 if weight is None else weight
    loss = -w * (pw * target * np.log(probs) + (1 - target) * np.log(1 - probs))
    return _reduce(loss, reduction)


def sigmoid_focal_loss(
    logits: np.ndarray, target: np.ndarray, *, alpha: float, gamma: float, reduction: str
) -> np.ndarray | float:
    """torchvision.ops.sigmoid_focal_loss written out (alpha < 0 means no alpha weighting)."""
    p = sigmoid(logits)
    ce = -(target * np.log(p) + (1 - target) * np.log(1 - p))
    p_t = p * target + (1 - p) * (1 - target)
    loss = ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = (alpha * target + (1 - alpha) * (1 - target)) * loss
    return _reduce(loss, reduction)


def entropy(probs: np.ndarray) -> np.ndarray:
    """H(t) = -sum_c t_c log t_c per row (0 log 0 = 0)."""
    safe = np.where(probs > 0, probs, 1.0)
    return -(probs * np.log(safe)).sum(axis=1)


def _reduce(loss: np.ndarray, reduction: str) -> np.ndarray | float:
    if reduction == "none":
        return loss
    if reduction == "sum":
        return float(loss.sum())
    return float(loss.mean())
