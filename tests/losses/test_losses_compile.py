"""``torch.compile(fullgraph=True)`` of a training step whose loss is a crossent loss.

With ``validate=False`` nothing reads the data on the host, so Dynamo traces each loss without
a graph break: the numba cross-entropy and the chunked linear cross-entropy as custom operators
(``crossent::fused_cross_entropy``, ``crossent::linear_cross_entropy``) with fake
implementations and registered autograd, the reference paths (and binary cross-entropy and
focal loss) as plain torch operations. The compiled loss and gradients must equal eager ones.
The ``aot_eager`` backend runs Dynamo and AOTAutograd (where the fake implementations and
autograd formulas are used) without Inductor's C++ code generation, which would only add
minutes of compiling on a CPU.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

import crossent
from crossent.kernels import cpu

ROWS, DIM, CLASSES = 6, 4, 9


def _problem():
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(ROWS, DIM, dtype=torch.float64, generator=generator)
    weight = torch.randn(CLASSES, DIM, dtype=torch.float64, generator=generator)
    target = torch.randint(0, CLASSES, (ROWS,), generator=generator)
    target[2] = -100
    return features, weight, target


def _cross_entropy_fused(features, weight, target):
    logits = features @ weight.T
    loss, lse = crossent.cross_entropy(logits, target, implementation="fused", validate=False,
                                       label_smoothing=0.1, z_loss=1e-2, softcap=4.0,
                                       return_lse=True)
    return loss + 0.0 * lse.sum()


def _cross_entropy_reference(features, weight, target):
    return crossent.cross_entropy(features @ weight.T, target, implementation="reference",
                                  validate=False, z_loss=1e-2, softcap=4.0)


def _focal(features, weight, target):
    return crossent.focal_loss(features @ weight.T, target, gamma=2.0, validate=False)


def _binary(features, weight, target):
    labels = (target.unsqueeze(1) == torch.arange(CLASSES)).double()
    return crossent.binary_cross_entropy(features @ weight.T, labels, validate=False)


def _linear(features, weight, target):
    return crossent.linear_cross_entropy(features, weight, target, chunk_size=4,
                                         validate=False, z_loss=1e-2, softcap=4.0)


def _linear_none(features, weight, target):
    per_row = crossent.linear_cross_entropy(features, weight, target, chunk_size=4,
                                            reduction="none", validate=False)
    return (per_row * torch.arange(ROWS, dtype=per_row.dtype)).sum()


STEPS: dict[str, Callable[..., torch.Tensor]] = {
    "cross_entropy_fused": _cross_entropy_fused,
    "cross_entropy_reference": _cross_entropy_reference,
    "focal_loss": _focal,
    "binary_cross_entropy": _binary,
    "linear_cross_entropy": _linear,
    "linear_cross_entropy_none": _linear_none,
}


@pytest.mark.parametrize("name", list(STEPS))
def test_compiled_step_equals_eager(name):
    if ("fused" in name or "linear" in name) and not cpu.available():
        pytest.skip("numba kernel unavailable")
    step = STEPS[name]
    features, weight, target = _problem()
    eager = [t.clone().requires_grad_() for t in (features, weight)]
    eager_loss = step(*eager, target)
    eager_loss.backward()

    torch._dynamo.reset()
    compiled_step = torch.compile(step, fullgraph=True, backend="aot_eager")
    leaves = [t.clone().requires_grad_() for t in (features, weight)]
    loss = compiled_step(*leaves, target)
    loss.backward()
    torch._dynamo.reset()

    torch.testing.assert_close(loss, eager_loss, rtol=1e-12, atol=1e-12)
    for got, want in zip(leaves, eager, strict=True):
        torch.testing.assert_close(got.grad, want.grad, rtol=1e-12, atol=1e-12)
