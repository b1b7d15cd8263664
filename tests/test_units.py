import math

import pytest

from crossent.errors import CrossentError
from crossent.units import log_divisor


def test_named_bases_are_natural_logs_of_e_and_2() -> None:
    assert log_divisor("nats") == 1.0
    assert log_divisor("bits") == pytest.approx(math.log(2))
    assert log_divisor(10) == pytest.approx(math.log(10))
    assert log_divisor("10") == pytest.approx(math.log(10))


@pytest.mark.parametrize("bad", [1, 0.5, -2, float("inf"), float("nan"), "decibans", True])
def test_base_outside_range_names_the_value(bad: object) -> None:
    with pytest.raises(CrossentError, match="base = "):
        log_divisor(bad)  # type: ignore[arg-type]
