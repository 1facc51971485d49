"""Request integers: bad input is None, never an exception."""

from __future__ import annotations

import pytest

from accounts.params import int_param


@pytest.mark.parametrize("value", [None, "", "abc", "²", "١٢", "-1", "1.5", " 1", "9" * 19])
def test_bad_values_are_none(value):
    assert int_param(value) is None


def test_good_values_and_wider_limit():
    assert int_param("42") == 42
    assert int_param("9" * 25, max_digits=30) == int("9" * 25)
