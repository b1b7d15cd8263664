"""Ahead-of-time compile of the Triton row kernel for real NVIDIA targets, without a GPU.

The interpreter test (test_kernels_cuda.py) checks the numbers but never lowers the kernel, so
constexpr misuse, dtype mismatches, unsupported ops and register spills would only show on a
GPU. Here ``triton.compile`` takes the kernel through TTIR -> TTGIR -> LLVM -> PTX -> cubin with
the ptxas bundled with triton, for sm_90 (H100) and sm_80 (A100), once per specialization that
``row_kernel`` launches: a stand-in for the kernel records row_kernel's real launch arguments
(CPU tensors), which are turned into the signature, constexprs and divisibility attributes the
Triton launcher would derive from them. Registers and spills come from the ``ptxas -v`` log.
"""

from __future__ import annotations

import os
import re
from typing import Any

import pytest
import torch

triton = pytest.importorskip("triton", reason="triton is not installed (optional extra 'gpu')")

from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.backends.nvidia.compiler import get_ptxas  # noqa: E402

from crossent.kernels import cuda  # noqa: E402
from crossent.kernels.rules import RowOptions  # noqa: E402

ARCHS = {90: "sm_90 (H100)", 80: "sm_80 (A100)"}
# classes -> BLOCK: 1 -> 1 (n_classes and strides specialise to 1), 37 -> 64,
# 32000 -> 4096 with strides divisible by 16 (vectorised loads), 50257 -> 4096 without
CLASSES = [1, 37, 32000, 50257]
POINTER_TYPES = {
    torch.float16: "fp16", torch.bfloat16: "bf16", torch.float32: "fp32",
    torch.float64: "fp64", torch.int32: "i32", torch.int64: "i64",
}
# spills ptxas reported when these tests were written (triton 3.9.0, ptxas-blackwell 13.4 for
# sm_90; ptxas 12.9 for sm_80), as (arch, dtype, soft, weighted, classes, softcap): the most of
# stores and loads. float64 with 4096-wide blocks needs more than 255 registers once the z-loss,
# the soft-cap and the log-sum-exp output are live; every float32 case but one spills nothing.
# Every case not listed must not spill at all.
_F64 = torch.float64
KNOWN_SPILL_BYTES = {
    (90, torch.float32, False, True, 32000, None): 8,  # 96 registers, 8-byte stack frame
    (90, _F64, False, False, 32000, None): 16,
    (80, _F64, False, True, 32000, 30.0): 4, (80, _F64, False, True, 50257, 30.0): 28,
    (80, _F64, True, True, 50257, 30.0): 180,
    (90, _F64, False, False, 32000, 30.0): 152, (90, _F64, False, False, 50257, 30.0): 232,
    (90, _F64, False, True, 32000, 30.0): 52, (90, _F64, False, True, 50257, 30.0): 264,
    (90, _F64, True, False, 32000, 30.0): 8, (90, _F64, True, False, 50257, 30.0): 56,
    (90, _F64, True, True, 32000, 30.0): 56, (90, _F64, True, True, 50257, 30.0): 432,
}
STATIC_SHARED_LIMIT = 48 * 1024  # more needs an opt-in at launch


class _LaunchRecorder:
    """Stands in for the jitted kernel: ``kernel[grid](*args, **constexprs)`` is recorded."""

    def __init__(self) -> None:
        self.args: tuple[Any, ...] = ()
        self.constexprs: dict[str, Any] = {}

    def __getitem__(self, grid: tuple[int, ...]) -> Any:
        def launch(*args: Any, **constexprs: Any) -> None:
            self.args, self.constexprs = args, constexprs

        return launch


def _launch_arguments(monkeypatch, dtype, soft, weighted, classes, softcap=None):
    """row_kernel's launch arguments for (2, classes) logits, with the target and weight
    dtypes the callers pass (losses.cross_entropy and kernels.linear cast both to the
    logits' dtype; class indices are int64)."""
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(2, classes, dtype=dtype, generator=generator)
    if soft:
        target = torch.softmax(torch.randn(2, classes, dtype=dtype, generator=generator), 1)
    else:
        target = torch.tensor([0, -100])
    weight = torch.rand(classes, dtype=dtype, generator=generator) if weighted else None
    recorder = _LaunchRecorder()
    monkeypatch.setattr(cuda, "_cross_entropy_rows", recorder)
    cuda.row_kernel(logits, target, logits, RowOptions(
        weight, ignore_index=-100, on_mass=0.9, off_mass=0.1 / classes, grad_scale=0.5,
        z_loss=1e-4 if softcap else 0.0, softcap=softcap,
    ))
    return recorder.args, recorder.constexprs


def _specialization(kernel, args, constexprs):
    """(signature, constexprs, attrs) as triton 3.9's launcher derives them from the arguments:
    pointers typed by dtype and marked 16-byte aligned when they are; integers equal to 1
    become constexprs, others are i32 (i64 beyond int32), marked divisible when % 16 == 0."""
    signature: dict[str, str] = {}
    constants: dict[str, Any] = dict(constexprs)
    attrs: dict[tuple[int, ...], list[list[Any]]] = {}
    divisible = [["tt.divisibility", 16]]
    for index, (name, value) in enumerate(zip(kernel.arg_names, args, strict=False)):
        if isinstance(value, torch.Tensor):
            signature[name] = "*" + POINTER_TYPES[value.dtype]
            if value.data_ptr() % 16 == 0:
                attrs[(index,)] = divisible
        elif isinstance(value, int) and value == 1:
            signature[name] = "constexpr"
            constants[name] = 1
        elif isinstance(value, int):
            signature[name] = "i32" if -(2**31) <= value < 2**31 else "i64"
            if value % 16 == 0:
                attrs[(index,)] = divisible
        else:
            raise TypeError(f"no Triton type for {name} = {value!r}")
    for name in constexprs:
        signature[name] = "constexpr"
    assert list(signature) == kernel.arg_names[: len(signature)]
    assert len(signature) == len(kernel.arg_names), "row_kernel left kernel arguments unset"
    return signature, constants, attrs


def _ptxas_resources(log):
    """Registers and spill bytes from the ``ptxas -v`` log of one compile."""
    registers = re.search(r"Used (\d+) registers", log)
    frame = re.search(
        r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads", log
    )
    assert registers and frame, f"no resource usage in the ptxas log:\n{log}"
    return {
        "registers": int(registers[1]), "stack_bytes": int(frame[1]),
        "spill_store_bytes": int(frame[2]), "spill_load_bytes": int(frame[3]),
    }


@pytest.mark.skipif(
    os.environ.get("TRITON_INTERPRET") == "1", reason="TRITON_INTERPRET=1: kernels are not compiled"
)
@pytest.mark.parametrize("arch", list(ARCHS), ids=[f"sm{arch}" for arch in ARCHS])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["fp32", "fp64"])
@pytest.mark.parametrize("soft", [False, True], ids=["index", "soft"])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("classes", CLASSES, ids=[f"C{classes}" for classes in CLASSES])
@pytest.mark.parametrize("softcap", [None, 30.0], ids=["nocap", "softcap"])
def test_row_kernel_compiles_to_cubin_without_spills(
    arch, dtype, soft, weighted, classes, softcap, monkeypatch, tmp_path, capsys
):
    try:
        ptxas = get_ptxas(arch)
    except RuntimeError as error:
        pytest.skip(f"no ptxas for {ARCHS[arch]}: {error}")
    # a fresh cache so that ptxas really runs; its -v log is printed (and captured) per compile;
    # FP fusion stated explicitly at triton 3.9's default, which silences its warning
    monkeypatch.setenv("TRITON_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("TRITON_DUMP_PTXAS_LOG", "1")
    monkeypatch.setenv("TRITON_DEFAULT_FP_FUSION", "1")
    kernel = cuda._cross_entropy_rows
    args, constexprs = _launch_arguments(monkeypatch, dtype, soft, weighted, classes, softcap)
    signature, constants, attrs = _specialization(kernel, args, constexprs)
    capsys.readouterr()

    compiled = triton.compile(
        triton.compiler.ASTSource(fn=kernel, signature=signature, constexprs=constants,
                                  attrs=attrs),
        target=GPUTarget("cuda", arch, 32),
    )

    resources = _ptxas_resources(capsys.readouterr().out)
    resources["shared_bytes"] = compiled.metadata.shared
    case = (
        f"{ARCHS[arch]} {dtype} soft={soft} weighted={weighted} classes={classes} "
        f"softcap={softcap} "
        f"BLOCK={constexprs['BLOCK']} ptxas {ptxas.version}: {resources}"
    )
    assert len(compiled.asm["cubin"]) > 0, case
    allowed_spill = KNOWN_SPILL_BYTES.get((arch, dtype, soft, weighted, classes, softcap), 0)
    assert resources["spill_store_bytes"] <= allowed_spill, case
    assert resources["spill_load_bytes"] <= allowed_spill, case
    assert resources["shared_bytes"] < STATIC_SHARED_LIMIT, case
