"""The public losses: the cross-entropy family on logits (:mod:`.classification`) and the
cross-entropy of a linear output layer without its logits (:mod:`.linear`).

Each function validates its inputs once, at the top, and then calls a kernel from
:mod:`crossent.kernels`, which takes validated input only.
"""

from crossent.losses.classification import (
    binary_cross_entropy,
    class_balanced_weights,
    cross_entropy,
    focal_loss,
)
from crossent.losses.linear import linear_cross_entropy

__all__ = [
    "binary_cross_entropy",
    "class_balanced_weights",
    "cross_entropy",
    "focal_loss",
    "linear_cross_entropy",
]
