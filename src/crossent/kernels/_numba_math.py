"""Row primitives for the numba kernels: a vectorisable ``exp`` and reassociated reductions.

numba lowers ``math.exp`` to a scalar libm call per element (no vector math library is
bundled), which makes the exponential pass of a fused softmax several times slower than the
memory it touches. :func:`exp_shifted_sum` evaluates ``exp(x - shift)`` with Cody–Waite range
reduction and the Cephes polynomials (``expf``: degree-5 polynomial, ``exp``: Padé form), then
scales by ``2**n`` built directly in the exponent bits, so LLVM vectorises the loop. Accuracy
is that of Cephes (about 1 ulp); results below the smallest normal number are flushed to 0.

Loops that divide compile with ``error_model="numpy"``: numba's default checks every division
for a zero divisor (to raise ZeroDivisionError), a branch that stops LLVM from vectorising.
The reductions use ``fastmath={"reassoc", "contract"}`` only: summation order may change (as
in any vectorised sum) but infinities and NaNs keep IEEE semantics. The maximum additionally
assumes no NaN (``nnan``): a kernel that validates its input runs :func:`nonfinite_probe`
first (a NaN anywhere makes its result NaN) and skips the row before taking the maximum.

Import this module only when numba is importable. numba's on-disk cache (``cache=True``)
checks only the source file of the cached function: after editing this file, also touch
``cpu.py`` (or delete ``kernels/__pycache__/*.nbi``) so that its kernels recompile.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic, overload
from numba.np.numpy_support import as_dtype

_REASSOC = {"reassoc", "contract"}
_MAX_FLAGS = {"reassoc", "contract", "nnan", "nsz"}


@intrinsic
def _int_bits_as_float(typingctx: Any, bits: Any) -> Any:
    """Reinterpret an int32 (int64) as the float32 (float64) with the same bits."""
    if bits == types.int32:
        def codegen32(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            return builder.bitcast(args[0], ir.FloatType())

        return types.float32(types.int32), codegen32
    if bits == types.int64:
        def codegen64(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            return builder.bitcast(args[0], ir.DoubleType())

        return types.float64(types.int64), codegen64
    return None


@intrinsic
def _maxnum(typingctx: Any, left: Any, right: Any) -> Any:
    """``llvm.maxnum``: the larger of two floats of one type; LLVM vectorises its reductions
    (a Python-style ``max`` compiles to compare-and-branch, which it does not)."""
    if left != right or left not in (types.float32, types.float64):
        return None
    llvm_type = ir.FloatType() if left == types.float32 else ir.DoubleType()

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        function = builder.module.declare_intrinsic(
            "llvm.maxnum", [llvm_type], ir.FunctionType(llvm_type, [llvm_type, llvm_type])
        )
        return builder.call(function, args)

    return left(left, right), codegen


# float32 constants (Cephes expf); typed so that numba keeps the arithmetic in float32
_F32_LOG2E = np.float32(1.44269504088896341)
_F32_LN2_HI = np.float32(0.693359375)
_F32_LN2_LO = np.float32(-2.12194440e-4)
_F32_P = tuple(
    np.float32(value)
    for value in (
        1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1,
        5.0000001201e-1,
    )
)
_F32_LOWEST = np.float32(-87.0)  # below this exp(x) is subnormal: flushed to 0
_F32_HALF = np.float32(0.5)
_F32_ONE = np.float32(1.0)
_F32_ZERO = np.float32(0.0)
_F32_BIAS = np.float32(127.0)
_F32_MANTISSA = np.float32(8388608.0)  # 2**23

# float64 constants (Cephes exp, Padé form)
_F64_LN2_HI = 6.93145751953125e-1
_F64_LN2_LO = 1.42860682030941723212e-6
_F64_LOWEST = -708.0
_F64_MANTISSA = 4503599627370496.0  # 2**52


@njit(inline="always")
def _expf(x: Any) -> Any:  # pragma: no cover - compiled by numba
    clamped = max(x, _F32_LOWEST)
    n = np.floor(clamped * _F32_LOG2E + _F32_HALF)
    r = clamped - n * _F32_LN2_HI
    r = r - n * _F32_LN2_LO
    p0, p1, p2, p3, p4, p5 = _F32_P
    poly = ((((p0 * r + p1) * r + p2) * r + p3) * r + p4) * r + p5
    value = poly * (r * r) + r + _F32_ONE
    # 2**n assembled in the exponent field: (n + 127) << 23, via an exact float product
    scale = _int_bits_as_float(np.int32((n + _F32_BIAS) * _F32_MANTISSA))  # type: ignore[call-arg,var-annotated]
    return value * scale if x >= _F32_LOWEST else _F32_ZERO


@njit(inline="always")
def _expd(x: Any) -> Any:  # pragma: no cover - compiled by numba
    clamped = max(x, _F64_LOWEST)
    n = np.floor(clamped * 1.4426950408889634073599 + 0.5)
    r = clamped - n * _F64_LN2_HI
    r = r - n * _F64_LN2_LO
    rr = r * r
    px = r * ((1.26177193074810590878e-4 * rr + 3.02994407707441961300e-2) * rr
              + 9.99999999999999999910e-1)
    qx = (((3.00198505138664455042e-6 * rr + 2.52448340349684104192e-3) * rr
           + 2.27265548208155028766e-1) * rr + 2.00000000000000000009e0)
    value = 1.0 + 2.0 * (px / (qx - px))
    scale = _int_bits_as_float(np.int64((n + 1023.0) * _F64_MANTISSA))  # type: ignore[call-arg,var-annotated]
    return value * scale if x >= _F64_LOWEST else 0.0


@njit(fastmath=_REASSOC, cache=True)
def _exp_sum_f32(source: Any, out: Any, shift: float) -> float:  # pragma: no cover
    typed_shift = np.float32(shift)
    total = _F32_ZERO
    for j in range(source.shape[0]):
        value = _expf(source[j] - typed_shift)
        out[j] = value
        total += value
    return np.float64(total)


@njit(fastmath=_REASSOC, cache=True, error_model="numpy")
def _exp_sum_f64(source: Any, out: Any, shift: float) -> float:  # pragma: no cover
    total = 0.0
    for j in range(source.shape[0]):
        value = _expd(source[j] - shift)
        out[j] = value
        total += value
    return total


@njit(fastmath=_REASSOC, cache=True)
def _exp_sum_inplace_f32(values: Any, shift: float) -> float:  # pragma: no cover
    typed_shift = np.float32(shift)
    total = _F32_ZERO
    for j in range(values.shape[0]):
        value = _expf(values[j] - typed_shift)
        values[j] = value
        total += value
    return np.float64(total)


@njit(fastmath=_REASSOC, cache=True, error_model="numpy")
def _exp_sum_inplace_f64(values: Any, shift: float) -> float:  # pragma: no cover
    total = 0.0
    for j in range(values.shape[0]):
        value = _expd(values[j] - shift)
        values[j] = value
        total += value
    return total


def exp_shifted_sum(source: Any, out: Any, shift: float) -> float:
    """``out[j] = exp(source[j] - shift)`` for 1-D float arrays; returns ``sum(out)``.

    numba-callable only. The sum is accumulated in the arrays' dtype, in vector lanes (like
    any vectorised sum, e.g. PyTorch's); each term is in (0, 1] when ``shift`` is the maximum.
    """
    np.exp(source - shift, out=out)
    return float(out.sum())


@overload(exp_shifted_sum)
def _exp_shifted_sum_impl(source: Any, out: Any, shift: Any) -> Any:
    # source and out may be the same row (in place); a loop over two possibly-aliased arrays
    # falls back to scalar code after LLVM's overlap check, so that case gets its own loop
    if source.dtype == types.float32:
        def impl32(source: Any, out: Any, shift: Any) -> Any:  # pragma: no cover
            if source.ctypes.data == out.ctypes.data:
                return _exp_sum_inplace_f32(out, shift)
            return _exp_sum_f32(source, out, shift)

        return impl32

    def impl64(source: Any, out: Any, shift: Any) -> Any:  # pragma: no cover
        if source.ctypes.data == out.ctypes.data:
            return _exp_sum_inplace_f64(out, shift)
        return _exp_sum_f64(source, out, shift)

    return impl64


def scale_shift_into(out: Any, scale: float, offset: float) -> None:
    """``out[j] = out[j] * scale - offset`` in the array's own dtype (numba-callable only)."""
    out *= scale
    out -= offset


@overload(scale_shift_into)
def _scale_shift_into_impl(out: Any, scale: Any, offset: Any) -> Any:
    element = as_dtype(out.dtype).type

    def impl(out: Any, scale: Any, offset: Any) -> None:  # pragma: no cover
        typed_scale = element(scale)
        typed_offset = element(offset)
        for j in range(out.shape[0]):
            out[j] = out[j] * typed_scale - typed_offset

    return impl


@njit(fastmath=_MAX_FLAGS, cache=True)
def row_max(values: Any) -> float:  # pragma: no cover - compiled by numba
    """Largest element of a non-empty 1-D array (NaN-free: inputs are checked first)."""
    best = values[0]
    for j in range(values.shape[0]):
        best = _maxnum(best, values[j])  # type: ignore[call-arg]
    return np.float64(best)


@njit(fastmath=_REASSOC, cache=True)
def gap_sum(values: Any, shift: float) -> float:  # pragma: no cover - compiled by numba
    """``sum_j (shift - values[j])`` in float64 (each term >= 0 when shift is the max)."""
    total = 0.0
    for j in range(values.shape[0]):
        total += shift - values[j]
    return total


@njit(fastmath=_REASSOC, cache=True)
def weighted_gap_sum(
    values: Any, weight: Any, shift: float
) -> float:  # pragma: no cover - compiled by numba
    """``sum_j w_j (shift - values[j])`` skipping zero weights (so a -inf logit adds 0 there)."""
    total = 0.0
    for j in range(values.shape[0]):
        term = weight[j] * (shift - values[j])
        total += term if weight[j] != 0.0 else 0.0
    return total


@njit(fastmath=_REASSOC, cache=True)
def soft_gap_and_mass(
    values: Any, target: Any, weight: Any, use_weight: bool, on_mass: float, off_mass: float,
    shift: float,
) -> tuple[float, float]:  # pragma: no cover - compiled by numba
    """For ``c_j = w_j (a t_j + b)``: ``(sum_j c_j (shift - values[j]), sum_j c_j)``.

    Terms with zero target mass are skipped, so a -inf logit with no mass adds exactly 0.
    """
    gap_total = 0.0
    mass = 0.0
    for j in range(values.shape[0]):
        coef = on_mass * target[j] + off_mass
        if use_weight:
            coef *= weight[j]
        term = coef * (shift - values[j])
        gap_total += term if coef != 0.0 else 0.0
        mass += coef
    return gap_total, mass


@njit(fastmath=_REASSOC, cache=True)
def nonfinite_probe(values: Any) -> float:  # pragma: no cover - compiled by numba
    """``sum_j 0 * values[j]``: 0 when every element is finite, NaN when one is NaN or ±inf.

    One vectorised read (``0 * x`` cannot be folded to 0 without ``nnan``/``ninf``); a row that
    fails it is then scanned element by element by the caller.
    """
    total = values[0] * 0
    for j in range(values.shape[0]):
        total += values[j] * 0
    return np.float64(total)


# Cephes tanhf / tanh below |x| = 0.625 (where 1 - 2 / (exp(2x) + 1) would cancel)
_F32_TANH = tuple(np.float32(value) for value in (
    -5.70498872745e-3, 2.06390887954e-2, -5.37397155531e-2, 1.33314422036e-1, -3.33332819422e-1,
))
_F32_TWO = np.float32(2.0)
_F32_SMALL = np.float32(0.625)
_F64_TANH_P = (-9.64399179425052238628e-1, -9.92877231001918586564e1,
               -1.61468768441708447952e3)
_F64_TANH_Q = (1.12811678491632931402e2, 2.23548839060100448583e3, 4.84406305325125486048e3)


@njit(fastmath=_REASSOC, cache=True, error_model="numpy")
def _softcap_f32(source: Any, out: Any, cap: float) -> None:  # pragma: no cover
    typed_cap = np.float32(cap)
    inverse = np.float32(1.0 / cap)
    p0, p1, p2, p3, p4 = _F32_TANH
    for j in range(source.shape[0]):
        x = source[j] * inverse
        z = x * x
        small = ((((p0 * z + p1) * z + p2) * z + p3) * z + p4) * z * x + x
        decay = _expf(-_F32_TWO * abs(x))  # <= 1: no overflow
        large = (_F32_ONE - decay) / (_F32_ONE + decay)
        large = large if x >= _F32_ZERO else -large
        out[j] = typed_cap * (small if abs(x) < _F32_SMALL else large)


@njit(fastmath=_REASSOC, cache=True, error_model="numpy")
def _softcap_f64(source: Any, out: Any, cap: float) -> None:  # pragma: no cover
    inverse = 1.0 / cap
    p0, p1, p2 = _F64_TANH_P
    q0, q1, q2 = _F64_TANH_Q
    for j in range(source.shape[0]):
        x = source[j] * inverse
        z = x * x
        small = x + x * z * ((p0 * z + p1) * z + p2) / (((z + q0) * z + q1) * z + q2)
        decay = _expd(-2.0 * abs(x))  # <= 1: no overflow
        large = (1.0 - decay) / (1.0 + decay)
        large = large if x >= 0.0 else -large
        out[j] = cap * (small if abs(x) < 0.625 else large)


def softcap_into(source: Any, out: Any, cap: float) -> None:
    """``out[j] = cap * tanh(source[j] / cap)`` (Gemma 2's logit soft-capping), numba-callable.

    Cephes' ``tanh``: a polynomial (float32) or rational (float64) form below ``|x| = 0.625``,
    ``sign(x) (1 - e) / (1 + e)``, ``e = exp(-2|x|)``, with the vectorisable :func:`_expf` /
    :func:`_expd` above it
    (numba's own ``tanh`` is a scalar libm call per element); both are computed and one is
    selected, so the loop vectorises. Exact at ``±inf``.
    """
    np.multiply(np.tanh(source / cap), cap, out=out)


@overload(softcap_into)
def _softcap_into_impl(source: Any, out: Any, cap: Any) -> Any:
    if source.dtype == types.float32:
        def impl32(source: Any, out: Any, cap: Any) -> None:  # pragma: no cover
            _softcap_f32(source, out, cap)

        return impl32

    def impl64(source: Any, out: Any, cap: Any) -> None:  # pragma: no cover
        _softcap_f64(source, out, cap)

    return impl64


@njit(cache=True)
def softcap_chain(out: Any, capped: Any, cap: float) -> None:  # pragma: no cover
    """Chain rule through the soft-cap: ``out[j] *= 1 - (capped[j] / cap)^2``."""
    for j in range(out.shape[0]):
        ratio = capped[j] / cap
        out[j] *= 1.0 - ratio * ratio
