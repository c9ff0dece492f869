"""Combination strategies: how candidates from several models become one answer."""
