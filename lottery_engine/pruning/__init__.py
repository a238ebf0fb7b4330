"""Masks and what they mask: exact-count magnitude pruning and the prunable kernels of a model."""
