"""What every wing stands on: one-line faults, run events, YAML with limits and the files of a run.
No TensorFlow here."""
