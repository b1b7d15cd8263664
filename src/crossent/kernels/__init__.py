"""Loss kernels: ``reference`` (plain PyTorch, the semantic truth) and the fast paths.

* :mod:`crossent.kernels.rules` - the rules every kernel shares, written once: smoothing
  coefficients, the mean denominator, row reductions, soft-capping and the z-loss.
* :mod:`crossent.kernels.reference` - every loss written out from its definition.
* :mod:`crossent.kernels.cpu` - numba fused softmax cross-entropy (CPU float32/float64), with
  its row primitives in :mod:`crossent.kernels._numba_math`.
* :mod:`crossent.kernels.ops` - the fused cross-entropy as a ``torch.library`` custom op (and
  the eager in-place / Triton autograd function).
* :mod:`crossent.kernels.cuda` - Triton kernels, imported only when CUDA is present.
* :mod:`crossent.kernels.linear` - chunked linear + cross-entropy as custom ops, over the
  row-chunked sweep (:mod:`crossent.kernels.linear_sweep`) or the class-blocked one for
  float16/bfloat16 weights (:mod:`crossent.kernels.linear_blocked`).

Kernels assume validated input; :mod:`crossent.losses` validates once and dispatches here.
"""
