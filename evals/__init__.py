"""Benchmark runs (HumanEval, MBPP) driving the same solve pipeline a user calls."""
