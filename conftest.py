"""Repository-wide pytest set-up: which source modules the doctest run collects.

``make test`` runs every docstring example of ``src/crossent`` (``--doctest-modules``). The
Triton kernels' module imports ``triton`` at the top, which only CUDA machines have; without
it that module, and the script that runs them under Triton's interpreter, are left out of the
doctest collection (``tests/kernels`` tests the kernels where a GPU is lent).
"""

import importlib.util

collect_ignore = []
if importlib.util.find_spec("triton") is None:
    collect_ignore += ["src/crossent/kernels/cuda.py", "tests/kernels/_triton_interpreter_check.py"]
