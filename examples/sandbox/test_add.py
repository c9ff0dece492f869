from math import isclose


def test_small_numbers():
    assert add(2, 3) == 5


def test_negative():
    assert add(-4, 1) == -3


def test_floats():
    assert isclose(add(0.1, 0.2), 0.3)
