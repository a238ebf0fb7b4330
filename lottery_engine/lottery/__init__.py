"""The IMP loop (prune, rewind, retrain, beside its controls), the winning ticket it selects, and
the command line's progress bar."""
