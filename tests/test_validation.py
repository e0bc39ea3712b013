"""The shared argument checks: integers in every numeric form a user may pass (NumPy scalars from a
grid, integral floats from a TOML or JSON file), refused with one line naming the value otherwise."""

from __future__ import annotations

import numpy as np
import pytest

from nmrnn._validation import check_nonnegative_int, check_positive_int


@pytest.mark.parametrize("value", [3, np.int64(3), np.int32(3), 3.0, np.float32(3.0)])
def test_integers_in_any_numeric_form_are_accepted_as_int(value):
    out = check_positive_int("n", value)
    assert out == 3 and type(out) is int
    assert check_nonnegative_int("n", value) == 3


@pytest.mark.parametrize(
    "value", [0, -1, 2.5, True, np.bool_(True), float("nan"), float("inf"), np.float64("-inf"), "3", None, [3]]
)
def test_anything_else_is_refused_by_the_positive_check(value):
    with pytest.raises(ValueError, match=r"^n must be a positive integer, got "):
        check_positive_int("n", value)


def test_zero_is_nonnegative_and_negatives_and_non_integers_are_not():
    assert check_nonnegative_int("k", 0) == 0 and check_nonnegative_int("k", np.uint8(0)) == 0
    for bad in (-1, 0.5, False, float("inf"), "0"):
        with pytest.raises(ValueError, match=r"^k must be a non-negative integer, got "):
            check_nonnegative_int("k", bad)


def test_the_composition_settings_use_the_shared_check():
    import dataclasses

    from nmrnn.experiments.composition import PROFILES

    smoke = PROFILES["smoke"]
    with pytest.raises(ValueError, match="epochs must be a positive integer, got 0"):
        dataclasses.replace(smoke, epochs=0)
    assert dataclasses.replace(smoke, epochs=np.int64(2)).epochs == 2
