"""Palindromes: the tests live in the sibling file test_palindrome.py."""


def is_palindrome(text: str) -> bool:
    """Return True if text reads the same forwards and backwards."""
    pass
