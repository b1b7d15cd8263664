"""Turning the value checks off, per call (``validate=False``) or for a block of code.

What each mode costs (for every loss in :mod:`crossent.losses` and :mod:`crossent.nn`):

* **On** (the default): arguments' types, shapes, dtypes, devices and options are checked, and
  then the values: logits not NaN/``+inf``, probabilities in [0, 1] with rows summing to 1,
  class indices in range, weights finite and >= 0. Each value rule is one reduction over its
  tensor (a ``sum`` or an ``aminmax``, so the logits are read once more before the loss reads
  them) and one read of the result on the host, which on a GPU waits for the device. The
  first offender is located only on the way to raising.
* **Off**: only the checks that read no data (types, shapes, dtypes, devices, options) run.
  No pass over the data, no host synchronisation and no Python branch on tensor values, so a
  training step can run asynchronously on a GPU and ``torch.compile(fullgraph=True)`` sees no
  data-dependent control flow in the validation. Invalid values then give undefined results
  (NaN, or a device-side error for an index out of range), as in ``torch.nn.functional``.

``validate=None`` (the default of every loss) follows the process-wide setting, which is on
unless :func:`set_validation` turned it off or a :class:`validation` block is active;
``validate=True`` / ``False`` decides for that call alone.
"""

from __future__ import annotations

from types import TracebackType

from crossent._validation.numbers import check_bool

# A plain module global, not a ContextVar: torch.compile reads it as a constant (and guards on
# it), where a ContextVar lookup would break the graph.
_ENABLED = True


def validation_enabled() -> bool:
    """Whether value checks run for calls that pass ``validate=None``."""
    return _ENABLED


def set_validation(enabled: bool) -> None:
    """Turn value checks on or off for the whole process (until set again)."""
    global _ENABLED
    _ENABLED = check_bool(enabled, "enabled")


def resolve(validate: bool | None) -> bool:
    """A call's ``validate=`` argument: ``None`` follows the process-wide setting."""
    if validate is None:
        return _ENABLED
    return check_bool(validate, "validate")


class validation:
    """Context manager: value checks on (``True``) or off (``False``) inside the block.

    The previous setting comes back when the block exits, also on an exception; blocks nest.

    >>> import crossent, torch
    >>> with crossent.validation(False):
    ...     loss = crossent.cross_entropy(torch.zeros(2, 3), torch.tensor([0, 2]))
    """

    def __init__(self, enabled: bool) -> None:
        self.enabled = check_bool(enabled, "enabled")
        self._previous: list[bool] = []

    def __enter__(self) -> validation:
        self._previous.append(_ENABLED)
        set_validation(self.enabled)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        set_validation(self._previous.pop())
