"""Lottery Lab's engine: Iterative Magnitude Pruning on Keras 3, and the files of a run.

`lottery_engine.find_ticket` is imported on first use: the dashboard imports this package for its
run-folder readers and must not load TensorFlow.
"""


def __getattr__(name: str):
    if name == "find_ticket":
        from .api import find_ticket

        return find_ticket
    raise AttributeError(f"module 'lottery_engine' has no attribute {name!r}")
