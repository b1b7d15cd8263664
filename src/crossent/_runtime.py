"""Thread pools and a heap that share the machine: a short spin, thread counts that fit, and
freed memory kept for the next step.

A crossent process holds two OpenMP thread pools: torch's (its wheel bundles its own
``libgomp``) and numba's ``omp`` threading layer (linked against the system ``libgomp``, a
second copy with a second pool). By default ``libgomp`` lets a thread that reaches a barrier
or finishes a parallel region *spin* for ``GOMP_SPINCOUNT`` = 300,000 iterations (about a
millisecond) before it sleeps. Alone on the machine that spinning only burns idle cores;
beside another process it takes the cores the other process's threads need, and both slow
down many times over. A thread that sleeps at once (``OMP_WAIT_POLICY=PASSIVE``) shares
fairly but must be woken by the kernel for each of a training step's many small parallel
operations, which slows a lone run on a small model.

:func:`prepare_environment` therefore sets ``GOMP_SPINCOUNT`` to :data:`SPIN_COUNT` (a few
microseconds of spinning: long enough to catch the next small operation, too short to take
another process's core) unless the user set a wait policy or spin count of their own.
``libgomp`` reads it when it is loaded, so ``crossent/__init__.py`` calls this before anything
imports torch or numba; a program that imported torch before crossent keeps torch's own
policy. The README's "Threads and sharing the machine" has the measurements.

:func:`configure_threads` sets the number of threads of both pools, from (first found)
the ``--threads`` option, ``CROSSENT_THREADS``, ``OMP_NUM_THREADS``, or the cores this process
may run on (``os.sched_getaffinity``: a ``taskset`` or container limit, not the whole host).

:func:`keep_freed_memory` stops glibc from handing each large freed tensor back to the system
only to map and page-fault it again on the next step; the training commands call it.
"""

from __future__ import annotations

import ctypes
import os

from crossent._validation.numbers import check_int

#: Variables that already decide how OpenMP threads wait; any of them set means "leave it".
_WAIT_VARIABLES = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")

#: Spin iterations of an idle OpenMP thread before it sleeps (libgomp's default: 300,000).
SPIN_COUNT = 3000

#: Freed blocks below this size stay in the heap for reuse (glibc's largest mmap threshold).
MMAP_THRESHOLD = 32 << 20
#: Free memory at the top of the heap kept rather than returned to the system.
TRIM_THRESHOLD = 256 << 20
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt's parameter numbers (malloc.h)


#: Environment variables :func:`prepare_environment` set (not the user), with their values,
#: e.g. for a benchmark to take out of the environment of another library's process.
SET_HERE: dict[str, str] = {}


def prepare_environment() -> None:
    """Make idle OpenMP threads spin only :data:`SPIN_COUNT` iterations before they sleep,
    unless the user chose a wait policy or spin count."""
    if not any(name in os.environ for name in _WAIT_VARIABLES):
        os.environ["GOMP_SPINCOUNT"] = SET_HERE["GOMP_SPINCOUNT"] = str(SPIN_COUNT)


def environment_without_defaults() -> dict[str, str]:
    """This process's environment less what :func:`prepare_environment` set (a variable the
    user set since, to another value, stays): what another program (a peer in a benchmark)
    should start with, so that it keeps its own defaults.

    Example:
        >>> peer = environment_without_defaults()
        >>> any(SET_HERE[name] == peer.get(name) for name in SET_HERE)
        False
    """
    return {name: value for name, value in os.environ.items() if SET_HERE.get(name) != value}


def keep_freed_memory() -> bool:
    """Keep freed blocks under 32 MiB, and up to 256 MiB at the heap's top, for reuse; False
    where there is no glibc.

    glibc maps a large block (128 KiB at first) on its own and unmaps it when freed, raising
    that threshold only as such blocks are freed, and returns a free heap top over 128 KiB to
    the system. A training step frees and re-allocates the same few-MiB activations thousands
    of times, and each round trip through the system page-faults them in again (system time
    the README's "Threads and sharing the machine" measures). Pinning both thresholds makes
    those blocks heap blocks that the next step reuses. ``crossent serve`` does not call this
    (its buffers change size with every batch; see
    ``crossent.recsys.serving.engine.fix_mmap_threshold``).

    Example:
        >>> keep_freed_memory() in (True, False)
        True
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
            libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
        )
    except (OSError, AttributeError):  # not glibc
        return False


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
