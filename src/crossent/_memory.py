"""The process's own memory figures, read from Linux's ``/proc/self``: resident set size now
(``VmRSS``) and at its peak (``VmHWM``), and a reset of that peak.

The benchmarks and the objectives comparison (:func:`crossent.recsys.retrieval.compare_objectives`)
measure a step's peak memory as ``VmHWM`` after it minus ``VmRSS`` before, with the peak reset
in between. Where ``/proc`` is missing (macOS, Windows) the figures are ``None`` and the reset
says it could not be done, so callers report "not measured" instead of a wrong number.

Example:
    >>> rss = status_bytes("VmRSS")
    >>> rss is None or rss > 0
    True
    >>> status_bytes("NoSuchField") is None
    True
"""

from __future__ import annotations


def status_bytes(field: str) -> int | None:
    """A memory field of /proc/self/status (``VmRSS``, ``VmHWM``) in bytes; None without /proc."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def reset_peak_rss() -> bool:
    """Restart the peak-RSS counter (Linux: VmHWM) at the current RSS; False where impossible."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")  # resets VmHWM to the current RSS
        return True
    except OSError:
        return False
