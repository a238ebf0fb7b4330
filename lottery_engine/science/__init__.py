"""Experiments (arms × seeds, one run each), their write-up with paired tests, and the hybrid
baseline."""
