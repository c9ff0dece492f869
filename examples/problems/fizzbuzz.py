"""FizzBuzz: one doctest in the docstring and a test function in the file."""


def fizzbuzz(n: int) -> str:
    """Return "Fizz" if n is divisible by 3, "Buzz" if by 5, "FizzBuzz" if by both,
    otherwise n as a string.

    >>> fizzbuzz(15)
    'FizzBuzz'
    """
    raise NotImplementedError


def test_fizzbuzz() -> None:
    assert fizzbuzz(3) == "Fizz"
    assert fizzbuzz(10) == "Buzz"
    assert fizzbuzz(30) == "FizzBuzz"
    assert fizzbuzz(7) == "7"


if __name__ == "__main__":
    import doctest

    doctest.testmod()
