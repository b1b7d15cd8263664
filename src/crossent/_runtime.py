"""Thread pools that share the machine: a passive wait policy and thread counts that fit.

A crossent process holds two OpenMP thread pools: torch's (its wheel bundles its own
``libgomp``) and numba's ``omp`` threading layer (linked against the system ``libgomp``, a
second copy with a second pool). By default ``libgomp`` lets a thread that reaches a barrier
or finishes a parallel region *spin* (``GOMP_SPINCOUNT``, a few hundred thousand iterations)
before it sleeps. Alone on the machine that spinning only burns idle cores; beside another
process it takes the cores the other process's threads need, and both slow down many times
over (the README's "Threads and sharing the machine" has the measurements).

:func:`prepare_environment` therefore sets ``OMP_WAIT_POLICY=PASSIVE`` (threads sleep at once)
unless the user set a wait policy or spin count of their own. ``libgomp`` reads it when it is
loaded, so ``crossent/__init__.py`` calls this before anything imports torch or numba; a
program that imported torch before crossent keeps torch's own policy.

:func:`configure_threads` sets the number of threads of both pools, from (first found)
the ``--threads`` option, ``CROSSENT_THREADS``, ``OMP_NUM_THREADS``, or the cores this process
may run on (``os.sched_getaffinity``: a ``taskset`` or container limit, not the whole host).
"""

from __future__ import annotations

import os

from crossent._validation.numbers import check_int

#: Variables that already decide how OpenMP threads wait; any of them set means "leave it".
_WAIT_VARIABLES = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")


def prepare_environment() -> None:
    """Make OpenMP threads sleep at once when idle, unless the user chose a wait policy."""
    if not any(name in os.environ for name in _WAIT_VARIABLES):
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"


def available_cores() -> int:
    """The cores this process may run on (its affinity mask; all cores where unknown)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def _from_variable(name: str) -> int | None:
    text = os.environ.get(name, "").strip()
    if not text:
        return None
    # OMP_NUM_THREADS may be a list for nested regions ("4,2"): the first level is ours
    first = text.split(",")[0].strip()
    return check_int(int(first) if first.isdigit() else text, name, low=1)


def thread_count(threads: int | None = None) -> int:
    """Threads per pool: ``threads`` if given, else ``CROSSENT_THREADS``, else
    ``OMP_NUM_THREADS``, else :func:`available_cores`.

    Raises:
        CrossentError: ``threads`` below 1, or one of the variables not an integer >= 1.
    """
    if threads is not None:
        return check_int(threads, "--threads", low=1)
    for name in ("CROSSENT_THREADS", "OMP_NUM_THREADS"):
        value = _from_variable(name)
        if value is not None:
            return value
    return available_cores()


def configure_threads(threads: int | None = None) -> int:
    """Set torch's and numba's thread counts to :func:`thread_count`; returns it.

    Numba cannot start more threads than its pool was created with (``NUMBA_NUM_THREADS``,
    the affinity mask by default), so its count is capped there.
    """
    count = thread_count(threads)
    import torch

    torch.set_num_threads(count)
    try:
        import numba

        numba.set_num_threads(min(count, numba.config.NUMBA_NUM_THREADS))  # type: ignore[attr-defined]
    except ImportError:  # pragma: no cover - numba is a dependency
        pass
    return count
