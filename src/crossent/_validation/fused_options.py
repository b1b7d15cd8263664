"""The options the cross-entropies with a log-sum-exp share: ``z_loss``, ``softcap``,
``return_lse`` (:func:`crossent.cross_entropy`, :func:`crossent.linear_cross_entropy`,
:func:`crossent.distributed.sharded_cross_entropy`), checked in one place."""

from __future__ import annotations

from crossent._validation.numbers import check_bool, check_number
from crossent.errors import CrossentError


def check_fused_options(
    z_loss: object, softcap: object, return_lse: object, input_kind: str = "logits"
) -> tuple[float, float | None, bool]:
    """``(z_loss, softcap, return_lse)`` checked: a finite ``z_loss >= 0``, ``softcap`` None or
    a finite number > 0, ``return_lse`` a bool; any of them needs ``input_kind="logits"``."""
    z_value = check_number(z_loss, "z_loss", low=0.0)
    cap = None if softcap is None else check_number(
        softcap, "softcap", low=0.0, low_open=True, none_ok=True)
    lse_wanted = check_bool(return_lse, "return_lse")
    if input_kind != "logits" and (z_value or cap is not None or lse_wanted):
        raise CrossentError(
            f'z_loss, softcap and return_lse need input_kind="logits", not "{input_kind}"'
        )
    return z_value, cap, lse_wanted
