"""Sparse Mixture-of-Experts checkpoints built from dense models of one architecture."""
