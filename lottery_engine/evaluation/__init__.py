"""Numbers of a model: metrics, one compiled pass to score a split, FLOPs of a masked network, and
paired tests across seeds."""
