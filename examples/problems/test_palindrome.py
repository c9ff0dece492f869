from palindrome import is_palindrome


def test_word() -> None:
    assert is_palindrome("racecar")


def test_not_palindrome() -> None:
    assert not is_palindrome("hello")


def test_empty() -> None:
    assert is_palindrome("")


def test_even_length() -> None:
    assert is_palindrome("abba")
