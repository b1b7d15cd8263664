"""The public losses: the cross-entropy family on logits (:mod:`.classification`), the
cross-entropy of a linear output layer without its logits (:mod:`.linear`), and class weights
for imbalanced data (:mod:`.weights`).

Each function validates its inputs once, at the top, and then calls a kernel from
:mod:`crossent.kernels`, which takes validated input only.
"""

from crossent.losses.classification import binary_cross_entropy, cross_entropy, focal_loss
from crossent.losses.linear import linear_cross_entropy
from crossent.losses.weights import class_balanced_weights

__all__ = [
    "binary_cross_entropy",
    "class_balanced_weights",
    "cross_entropy",
    "focal_loss",
    "linear_cross_entropy",
]
