"""A trivial problem: the stub's doctests are its tests."""


def add(a: int, b: int) -> int:
    """Return the sum of a and b.

    >>> add(2, 3)
    5
    >>> add(-4, 1)
    -3
    >>> add(0, 0)
    0
    """
    ...
