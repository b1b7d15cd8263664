"""Loss kernels: ``reference`` (plain PyTorch, the semantic truth) and the fast paths.

* :mod:`crossent.kernels.reference` - every loss written out from its definition.
* :mod:`crossent.kernels.cpu` - numba fused softmax cross-entropy (CPU float32/float64).
* :mod:`crossent.kernels.cuda` - Triton kernels, imported only when CUDA is present.
* :mod:`crossent.kernels.linear` - chunked linear + cross-entropy.

Kernels assume validated input; :mod:`crossent.losses` validates once and dispatches here.
"""
