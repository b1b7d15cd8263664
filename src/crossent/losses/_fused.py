"""Which cross-entropy kernel runs, and running it: the fused kernels (numba on CPU, Triton on
CUDA) where they cover the call, the reference otherwise (:func:`crossent.cross_entropy`)."""

from __future__ import annotations

import importlib

import torch

from crossent._validation.choices import InputKind, Reduction, Smoothing
from crossent.errors import CrossentError
from crossent.kernels import reference
from crossent.losses._inputs import MulticlassInputs, check_multiclass_input_values


def fused_kernel(
    implementation: str,
    scores: torch.Tensor,
    target: torch.Tensor,
    weight: torch.Tensor | None,
    input_kind: str,
    strict: bool = True,
) -> reference.Kernel | None:
    """The fused kernel to run, or None for the reference.

    "auto" fuses only where the fused kernels cover everything asked for: float32/float64
    logits, no gradient wanted for a soft target or the weights, and numba working (CPU) or
    Triton present (CUDA). "fused" raises if that is not possible (unless not ``strict``).
    """
    if implementation == "reference":
        return None
    reasons = []
    if input_kind != "logits":
        reasons.append(f'input_kind = "{input_kind}" (fused kernels take logits)')
    if target.requires_grad or (weight is not None and weight.requires_grad):
        reasons.append("a gradient is wanted for target or weight")
    kernel: reference.Kernel | None = None
    if scores.dtype not in (torch.float32, torch.float64):
        # the agreed kernel contract; float16/bfloat16 run in float32 through the reference
        reasons.append(f"dtype {scores.dtype} (the fused kernels take float32/float64)")
    elif scores.is_cuda:
        try:
            # Triton: imported only when CUDA is present
            cuda = importlib.import_module("crossent.kernels.cuda")
            kernel = cuda.triton_cross_entropy
        except ImportError as error:
            reasons.append(f"the Triton kernel is unavailable ({error})")
    else:
        from crossent.kernels import cpu

        if cpu.available():
            from crossent.kernels import ops

            kernel = ops.fused_cross_entropy
        else:
            reasons.append("numba is unavailable")
    if not reasons:
        return kernel
    if implementation == "fused" and strict:
        raise CrossentError(f'implementation = "fused" is not possible: {"; ".join(reasons)}')
    return None


def kernel_checks_values(
    implementation: str, input: object, target: object, weight: object, input_kind: str
) -> bool:
    """True when the numba kernel will run and so can check the logits during its own sweep
    (called before the arguments are validated: anything unusual answers False)."""
    if not (isinstance(input, torch.Tensor) and isinstance(target, torch.Tensor)
            and isinstance(weight, torch.Tensor | None)) or input.is_cuda:
        return False
    return fused_kernel(implementation, input, target, weight, input_kind,
                        strict=False) is not None


def run_cross_entropy(
    prepared: MulticlassInputs, input: torch.Tensor, *, implementation: str,
    ignore_index: int, smoothing: Smoothing, reduction: Reduction, input_kind: InputKind,
    inplace: bool,
    z_loss: float, softcap: float | None, check: bool, need_lse: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(loss, lse)`` of validated, laid-out inputs, in the kernels' ``(M, ...)`` layout.

    With ``check`` the fused kernel flags rows holding NaN or +inf (or -inf in every class)
    and leaves them as they were; the separate check then runs on ``input`` only to word the
    error exactly as it would have.
    """
    scores, target, weight = prepared.scores, prepared.target, prepared.weight
    kernel = fused_kernel(implementation, scores, target, weight, input_kind)
    if kernel is None:
        return reference.cross_entropy_and_lse(
            scores, target, weight=weight, ignore_index=ignore_index,
            label_smoothing=prepared.label_smoothing, smoothing=smoothing,
            reduction=reduction, divisor=prepared.divisor, input_kind=input_kind,
            eps=prepared.eps, z_loss=z_loss, softcap=softcap,
        )
    if target.dim() == 2:
        target = target.to(scores.dtype)
    if weight is not None:
        weight = weight.to(scores.dtype)
    loss, lse, status = kernel(
        scores.contiguous(), target.contiguous(), weight=weight, ignore_index=ignore_index,
        label_smoothing=prepared.label_smoothing, smoothing=smoothing, reduction=reduction,
        divisor=prepared.divisor, inplace=inplace, z_loss=z_loss, softcap=softcap,
        check=check, need_lse=need_lse,
    )
    if check and bool(status.any()):  # rejected rows are left as they were
        check_multiclass_input_values(input.unsqueeze(0) if input.dim() == 1 else input,
                                      input_kind)
        raise CrossentError("input is not finite")  # unreachable: the check above raises
    return loss, lse
