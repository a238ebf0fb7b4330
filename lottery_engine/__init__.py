"""Lottery Lab's engine: Iterative Magnitude Pruning on Keras 3, and the files of a run."""
