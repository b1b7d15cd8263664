"""Run by test_kernels_cuda.py with TRITON_INTERPRET=1: Triton kernels on CPU tensors.

Compares the Triton cross-entropy and linear cross-entropy with the reference, option for
option, and exits non-zero (with the failing case) on any mismatch.
"""

from __future__ import annotations

import itertools
import math

import torch

from crossent.kernels import cuda, reference
from crossent.kernels.linear import chunked_linear_cross_entropy


def check_cross_entropy() -> int:
    checked = 0
    cases = itertools.product(
        [torch.float32, torch.float64], [False, True], ["none", "mean"],
        ["uniform", "off_target"], [False, True], [None, (0.02, 3.0)],
    )
    for dtype, soft, reduction, smoothing, weighted, extra in cases:
        generator = torch.Generator().manual_seed(checked)
        rows, classes = 5, 37
        logits = 3 * torch.randn(rows, classes, dtype=dtype, generator=generator)
        if soft:
            target = torch.softmax(
                torch.randn(rows, classes, dtype=dtype, generator=generator), 1
            )
        else:
            target = torch.randint(0, classes, (rows,), generator=generator)
            target[1] = -100
        weight = torch.rand(classes, dtype=dtype, generator=generator) + 0.1 if weighted else None
        options = {
            "weight": weight, "ignore_index": -100, "label_smoothing": 0.1,
            "smoothing": smoothing, "reduction": reduction, "divisor": math.log(2.0),
        }
        if extra is not None:  # the z-loss and soft-cap specialisation
            options["z_loss"], options["softcap"] = extra
        scores = logits.clone().requires_grad_()
        loss, lse, _ = cuda.triton_cross_entropy(scores, target, inplace=False, **options)
        grad_output = torch.rand_like(loss) + 0.5
        (grad,) = torch.autograd.grad(loss, scores, grad_output)
        ref_scores = logits.clone().requires_grad_()
        expected, expected_lse = reference.cross_entropy_and_lse(ref_scores, target, **options)
        (ref_grad,) = torch.autograd.grad(expected, ref_scores, grad_output)
        tol = 1e-5 if dtype == torch.float32 else 1e-11
        case = f"{dtype} soft={soft} {reduction} {smoothing} weighted={weighted} {extra}"
        torch.testing.assert_close(loss, expected, rtol=tol, atol=tol, msg=case)
        torch.testing.assert_close(lse, expected_lse, rtol=tol, atol=tol, msg=case)
        torch.testing.assert_close(grad, ref_grad, rtol=tol, atol=tol, msg=case)
        checked += 1
    # in place: the logits' storage ends up holding the gradient
    logits = torch.randn(4, 9, dtype=torch.float64)
    target = torch.tensor([0, 3, 8, 2])
    scores = logits.clone()
    cuda.triton_cross_entropy(
        scores, target, weight=None, ignore_index=-100, label_smoothing=0.0,
        smoothing="uniform", reduction="sum", divisor=1.0, inplace=True,
    )
    expected_grad = torch.softmax(logits, 1) - torch.nn.functional.one_hot(target, 9)
    torch.testing.assert_close(scores, expected_grad)
    return checked + 1


def check_linear() -> int:
    generator = torch.Generator().manual_seed(0)
    hidden = torch.randn(10, 6, dtype=torch.float64, generator=generator)
    weight = torch.randn(23, 6, dtype=torch.float64, generator=generator)
    bias = torch.randn(23, dtype=torch.float64, generator=generator)
    target = torch.randint(0, 23, (10,), generator=generator)
    target[3] = -100
    leaves = [t.clone().requires_grad_() for t in (hidden, weight, bias)]
    loss, lse = chunked_linear_cross_entropy(
        leaves[0], leaves[1], target, bias=leaves[2], logit_bias=None, temperature=1.3,
        chunk_size=4, class_weight=None, ignore_index=-100, reduction="mean",
        label_smoothing=0.1, smoothing="uniform", divisor=1.0, z_loss=0.02, softcap=3.0,
        row_kernel="triton",
    )
    grads = torch.autograd.grad(loss, leaves)
    ref_leaves = [t.clone().requires_grad_() for t in (hidden, weight, bias)]
    capped = 3.0 * torch.tanh((ref_leaves[0] @ ref_leaves[1].T + ref_leaves[2]) / 1.3 / 3.0)
    expected_lse = torch.logsumexp(capped, 1)
    keep = target != -100
    expected = torch.nn.functional.cross_entropy(capped, target, label_smoothing=0.1) + (
        0.02 * expected_lse[keep] ** 2).mean()
    ref_grads = torch.autograd.grad(expected, ref_leaves)
    torch.testing.assert_close(loss, expected, rtol=1e-11, atol=1e-11)
    torch.testing.assert_close(lse, expected_lse.detach(), rtol=1e-11, atol=1e-11)
    for got, want in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-11, atol=1e-11)
    return 1


if __name__ == "__main__":
    count = check_cross_entropy() + check_linear()
    print(f"checked {count} cases")
