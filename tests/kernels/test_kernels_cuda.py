"""Triton kernels: under the CPU interpreter on small tensors, and on a GPU when there is one.

The interpreter tests run when triton is importable (``pip install -e ".[gpu]"``) and set
``TRITON_INTERPRET=1`` in a subprocess, because the interpreter mode is read when triton is
first imported. The ``cuda`` tests need a CUDA device and skip without one.
"""

from __future__ import annotations

import importlib.util
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from crossent.kernels import reference

HAS_TRITON = importlib.util.find_spec("triton") is not None
INTERPRETER_CHECK = Path(__file__).with_name("_triton_interpreter_check.py")


def _reference_case(dtype, soft, reduction, smoothing, weighted, rows=7, classes=37):
    generator = torch.Generator().manual_seed(0)
    logits = 3 * torch.randn(rows, classes, dtype=dtype, generator=generator)
    if soft:
        target = torch.softmax(torch.randn(rows, classes, dtype=dtype, generator=generator), 1)
    else:
        target = torch.randint(0, classes, (rows,), generator=generator)
        target[1] = -100
    weight = torch.rand(classes, dtype=dtype, generator=generator) + 0.1 if weighted else None
    options = {
        "weight": weight, "ignore_index": -100, "label_smoothing": 0.1, "smoothing": smoothing,
        "reduction": reduction, "divisor": math.log(2.0),
    }
    return logits, target, options


@pytest.mark.skipif(not HAS_TRITON, reason="triton is not installed (optional extra 'gpu')")
def test_triton_kernels_match_reference_under_cpu_interpreter():
    environment = dict(os.environ, TRITON_INTERPRET="1")
    result = subprocess.run(
        [sys.executable, str(INTERPRETER_CHECK)], env=environment, capture_output=True,
        text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "checked" in result.stdout


cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.mark.cuda
@cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("soft", [False, True])
@pytest.mark.parametrize("reduction", ["none", "mean"])
@pytest.mark.parametrize("smoothing", ["uniform", "off_target"])
@pytest.mark.parametrize("extra", [None, (0.01, 20.0)], ids=["plain", "zloss_softcap"])
def test_triton_cross_entropy_matches_reference_on_gpu(dtype, soft, reduction, smoothing,
                                                       extra):
    from crossent.kernels.cuda import triton_cross_entropy

    logits, target, options = _reference_case(dtype, soft, reduction, smoothing, True,
                                              rows=33, classes=5001)
    logits, target = logits.cuda(), target.cuda()
    options["weight"] = options["weight"].cuda()
    if extra is not None:
        options["z_loss"], options["softcap"] = extra
    scores = logits.clone().requires_grad_()
    loss, lse, _ = triton_cross_entropy(scores, target, inplace=False, **options)
    grad_output = torch.rand_like(loss) + 0.5
    (grad,) = torch.autograd.grad(loss, scores, grad_output)
    ref_scores = logits.clone().requires_grad_()
    expected, expected_lse = reference.cross_entropy_and_lse(ref_scores, target, **options)
    (ref_grad,) = torch.autograd.grad(expected, ref_scores, grad_output)
    tol = 1e-4 if dtype == torch.float32 else 1e-10
    torch.testing.assert_close(loss, expected, rtol=tol, atol=tol)
    torch.testing.assert_close(lse, expected_lse, rtol=tol, atol=tol)
    torch.testing.assert_close(grad, ref_grad, rtol=tol, atol=tol)


@pytest.mark.cuda
@cuda
def test_triton_linear_cross_entropy_matches_materialised_logits_on_gpu():
    from crossent import linear_cross_entropy

    generator = torch.Generator().manual_seed(0)
    hidden = torch.randn(300, 64, generator=generator).cuda().requires_grad_()
    weight = (torch.randn(5003, 64, generator=generator) / 8).cuda().requires_grad_()
    bias = torch.randn(5003, generator=generator).cuda().requires_grad_()
    target = torch.randint(0, 5003, (300,), generator=generator).cuda()
    target[:5] = -100
    loss = linear_cross_entropy(hidden, weight, target, bias=bias, chunk_size=128,
                                label_smoothing=0.1, z_loss=1e-3, softcap=15.0)
    grads = torch.autograd.grad(loss, (hidden, weight, bias))
    logits = 15.0 * torch.tanh((hidden @ weight.T + bias) / 15.0)
    lse = torch.logsumexp(logits, 1)[5:]
    expected = torch.nn.functional.cross_entropy(logits, target, label_smoothing=0.1) + (
        1e-3 * lse**2).mean()
    ref_grads = torch.autograd.grad(expected, (hidden, weight, bias))
    torch.testing.assert_close(loss, expected, rtol=1e-4, atol=1e-4)
    for got, want in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-3, atol=1e-4)
