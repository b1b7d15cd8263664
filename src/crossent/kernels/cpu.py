"""Fused softmax cross-entropy for CPU float32/float64 (numba): loss and gradient in one sweep.

Per row of the (M, C) logits the kernel makes three passes over C numbers that stay in cache:

1. the row maximum ``m`` (log-sum-exp with max shift, so no exponent overflows); with label
   smoothing or soft targets, one more read gathers ``sum_c w_c t_c (m - z_c)`` (terms with
   zero target mass are skipped, so a ``-inf`` logit with no mass contributes exactly 0);
2. ``e_c = exp(z_c - m)`` written to the gradient buffer and summed into ``s``;
3. the buffer is rescaled in place into the gradient of the *reduced* loss,
   ``scale * ((W_t + 2 c lse) * e_c / s - w_c t_c)`` with ``W_t = sum_c w_c t_c`` and ``c`` the
   z-loss coefficient.

Options: a soft-cap ``cap tanh(z / cap)`` is applied to a copy of the row (one scratch row per
thread) before pass 1, and its derivative ``1 - tanh^2`` multiplies the gradient after pass 3;
a validating call runs one
vectorised probe per row first (NaN or +inf turns ``sum 0 * z`` into NaN) and flags such a row
instead of computing it, so the non-finite check costs no separate pass over memory.

The kernels themselves compile with ``fastmath=False``; the row primitives they call
(:mod:`crossent.kernels._numba_math`) use a vectorisable exp and reassociated sums. The target
distribution after smoothing is ``t_c = a * y_c + b`` with ``(a, b)`` from
:func:`crossent.kernels.rules.smoothing_coefficients`; class weights weight each class term
(PyTorch's convention). The autograd wiring (custom op, in-place variant) is in
:mod:`crossent.kernels.ops`.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
import torch

from crossent.kernels.rules import RowOptions

try:  # numba is a dependency, but a broken install must fall back, not crash the import
    from numba import get_num_threads, get_thread_id, njit, prange

    from crossent.kernels._numba_math import (
        exp_shifted_sum,
        gap_sum,
        nonfinite_probe,
        row_max,
        scale_shift_into,
        soft_gap_and_mass,
        softcap_chain,
        softcap_into,
        weighted_gap_sum,
    )

    # Start numba's threading layer now. A kernel loaded from the on-disk cache that calls
    # get_thread_id() links against the layer's symbols; in a process that has not started it
    # yet (a fresh torchrun or spawn worker whose first kernel comes from the cache) LLVM
    # aborts with "Symbol not found: get_thread_id". get_num_threads() starts it.
    get_num_threads()

    _NUMBA_IMPORT_ERROR: Exception | None = None
except Exception as error:  # pragma: no cover - exercised only without numba
    _NUMBA_IMPORT_ERROR = error

    def njit(*args: Any, **kwargs: Any) -> Any:  # type: ignore[no-redef]
        def wrap(function: Any) -> Any:
            return function

        return wrap

    prange = range  # type: ignore[misc]

    def get_num_threads() -> int:  # type: ignore[misc]
        return 1

    def get_thread_id() -> int:  # type: ignore[misc]
        return 0



@njit(cache=True)
def _has_nan_or_pos_inf(row):  # pragma: no cover - compiled by numba
    """Element-wise scan of a row that failed :func:`nonfinite_probe` (``-inf`` is allowed)."""
    for j in range(row.shape[0]):
        if math.isnan(row[j]) or row[j] == math.inf:
            return True
    return False


@njit(cache=True)
def _rejected(row):  # pragma: no cover - compiled by numba
    """True if ``row`` holds NaN or +inf: one vectorised probe, a scan only if it fails."""
    return math.isnan(nonfinite_probe(row)) and _has_nan_or_pos_inf(row)


@njit(cache=True)
def _capped(row, scratch, softcap):  # pragma: no cover - compiled by numba
    """The row the softmax sees: ``row`` itself, or its soft-capped copy in this thread's
    ``scratch`` row (``softcap > 0``)."""
    if softcap > 0.0:
        source = scratch[get_thread_id()]
        softcap_into(row, source, softcap)
        return source
    return row


@njit(parallel=True, cache=True, fastmath=False)
def _index_rows(  # pragma: no cover - compiled by numba
    logits, grad, target, weight, use_weight, weight_sum, ignore_index, on_mass, off_mass,
    grad_scale, z_loss, softcap, scratch, check, need_lse, loss, lse, status
):
    """Integer targets: per-row loss into ``loss``, scaled gradient into ``grad``, log-sum-exp
    into ``lse``; with ``check``, a non-finite row is flagged in ``status`` and left untouched.

    ``logits`` and ``grad`` may be the same array (in place): every pass that needs the
    logits runs before the pass that overwrites them.
    """
    rows, classes = logits.shape
    for i in prange(rows):
        label = target[i]
        out = grad[i]
        ignored = label == ignore_index
        loss[i] = 0.0
        if ignored and not (check or need_lse):
            out[:] = 0.0
            continue
        if check and _rejected(logits[i]):
            status[i] = 1  # NaN or +inf: left untouched for the caller's message
            continue
        source = _capped(logits[i], scratch, softcap)
        shift = row_max(source)  # pass 1: max shift for log-sum-exp
        if check and shift == -math.inf:
            status[i] = 2
            continue
        off_loss = 0.0
        if off_mass != 0.0 and not ignored:  # smoothing mass on every class: sum_c w_c (max - z_c)
            off_loss = (
                weighted_gap_sum(source, weight, shift) if use_weight else gap_sum(source, shift)
            )
        target_logit = 0.0 if ignored else float(source[label])
        total = exp_shifted_sum(source, out, shift)  # pass 2: exp(z - max) into the buffer
        log_total = math.log(total)
        lse[i] = shift + log_total
        if ignored:
            out[:] = 0.0
            continue
        label_weight = weight[label] if use_weight else 1.0
        on_coef = on_mass * label_weight
        mass = off_mass * weight_sum + on_coef  # W_t = sum_c w_c t_c
        row_loss = off_mass * (off_loss + weight_sum * log_total) + z_loss * lse[i] * lse[i]
        if on_coef != 0.0:
            row_loss += on_coef * (shift + log_total - target_logit)
        loss[i] = row_loss
        # pass 3: gradient of the reduced loss, (W_t + 2 c lse) softmax - w * t, times the scale
        prob_scale = grad_scale * (mass + 2.0 * z_loss * lse[i]) / total
        off_scale = grad_scale * off_mass
        if off_mass != 0.0 and use_weight:
            for j in range(classes):
                out[j] = out[j] * prob_scale - off_scale * weight[j]
        else:
            scale_shift_into(out, prob_scale, off_scale)
        out[label] -= grad_scale * on_coef
        if softcap > 0.0:
            softcap_chain(out, source, softcap)


@njit(parallel=True, cache=True, fastmath=False)
def _soft_rows(  # pragma: no cover - compiled by numba
    logits, grad, target, weight, use_weight, on_mass, off_mass, grad_scale, z_loss, softcap,
    scratch, check, loss, lse, status
):
    """Soft targets ``target`` (M, C): smoothed ``t = a * target + b``, same three passes."""
    rows, classes = logits.shape
    for i in prange(rows):
        out = grad[i]
        target_row = target[i]
        loss[i] = 0.0
        if check and _rejected(logits[i]):
            status[i] = 1  # NaN or +inf: left untouched for the caller's message
            continue
        source = _capped(logits[i], scratch, softcap)
        shift = row_max(source)
        if check and shift == -math.inf:
            status[i] = 2
            continue
        gap_loss, mass = soft_gap_and_mass(
            source, target_row, weight, use_weight, on_mass, off_mass, shift
        )
        total = exp_shifted_sum(source, out, shift)
        lse[i] = shift + math.log(total)
        loss[i] = gap_loss + mass * math.log(total) + z_loss * lse[i] * lse[i]
        prob_scale = grad_scale * (mass + 2.0 * z_loss * lse[i]) / total
        for j in range(classes):
            coef = on_mass * target_row[j] + off_mass
            if use_weight:
                coef *= weight[j]
            out[j] = out[j] * prob_scale - grad_scale * coef
        if softcap > 0.0:
            softcap_chain(out, source, softcap)


def available() -> bool:
    """True when numba imports and the kernel compiles and runs on a tiny input."""
    global _AVAILABLE
    if _AVAILABLE is None:
        if _NUMBA_IMPORT_ERROR is not None:
            _AVAILABLE = False
        else:
            try:
                probe = torch.tensor([[0.0, 1.0]], dtype=torch.float64)
                rows = row_losses(
                    probe, torch.tensor([1]), torch.empty_like(probe),
                    RowOptions(None, ignore_index=-100, on_mass=1.0, off_mass=0.0,
                               grad_scale=1.0),
                )
                _AVAILABLE = bool(abs(float(rows.loss[0]) - math.log1p(math.exp(-1.0))) < 1e-12)
            except Exception:
                _AVAILABLE = False
    return _AVAILABLE


_AVAILABLE: bool | None = None


class RowResult(NamedTuple):
    """What the kernel returns besides the gradient rows: all ``(M,)`` float64 / int8 arrays."""

    loss: np.ndarray  # loss_i in nats (0 for an ignored or rejected row)
    lse: np.ndarray  # log-sum-exp of the (soft-capped) logits, nats
    status: np.ndarray  # 0 usable; with check: 1 holds NaN or +inf, 2 is -inf in every class


def row_losses(
    logits: torch.Tensor, target: torch.Tensor, grad_buffer: torch.Tensor, options: RowOptions
) -> RowResult:
    """The kernel itself: per-row losses and log-sum-exps, ``grad_scale * dloss_i/dz_i`` rows
    written to ``grad_buffer`` (which may be ``logits``: in place).

    ``options`` is the row-kernel contract (:class:`crossent.kernels.rules.RowOptions`);
    ``loss_i = CE_i + z_loss * lse_i^2 on the soft-capped logits ``cap tanh(z / cap)``. With
    ``check``, rows holding NaN or +inf, or -inf in every class, are flagged in ``status`` and
    not written (the non-finite check rides on the kernel's own sweep). ``need_lse`` also
    computes the log-sum-exp of ignored rows. All tensors are CPU and contiguous with class
    dimension last.
    """
    rows, classes = logits.shape
    result = RowResult(
        np.zeros(rows, dtype=np.float64), np.zeros(rows, dtype=np.float64),
        np.zeros(rows, dtype=np.int8),
    )
    if rows == 0:
        return result
    weight, softcap = options.weight, options.softcap
    use_weight = weight is not None
    # numba needs an array either way; a dummy of the logits' dtype keeps one compiled signature
    weight_np = (
        weight.detach().contiguous().numpy()
        if weight is not None
        else np.ones(1, dtype=logits.detach().numpy().dtype)
    )
    logits_np = logits.detach().numpy()
    grad_np = grad_buffer.detach().numpy()
    cap = 0.0 if softcap is None else float(softcap)
    # one soft-capped row per thread (no allocation per row)
    scratch = np.empty((get_num_threads(), classes) if cap else (1, 1), dtype=logits_np.dtype)
    if target.dim() == 2:
        _soft_rows(
            logits_np, grad_np, target.detach().numpy(), weight_np, use_weight,
            options.on_mass, options.off_mass, options.grad_scale, float(options.z_loss), cap,
            scratch, options.check, *result,
        )
    else:
        weight_sum = float(weight.double().sum()) if weight is not None else float(classes)
        _index_rows(
            logits_np, grad_np, target.detach().numpy(), weight_np, use_weight, weight_sum,
            int(options.ignore_index), options.on_mass, options.off_mass, options.grad_scale,
            float(options.z_loss), cap, scratch, options.check, options.need_lse, *result,
        )
    return result


def row_kernel(
    logits: torch.Tensor, target: torch.Tensor, grad_buffer: torch.Tensor, options: RowOptions
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`row_losses` with tensor results ``(loss, lse, status)``: the row-kernel contract
    shared with :func:`crossent.kernels.cuda.row_kernel`."""
    result = row_losses(logits, target, grad_buffer, options)
    return tuple(torch.from_numpy(array) for array in result)  # type: ignore[return-value]
