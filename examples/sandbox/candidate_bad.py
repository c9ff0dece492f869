def add(a, b):
    """Off by one on purpose, to show a failing verdict."""
    return a + b + 1
