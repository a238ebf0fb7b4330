"""What every wing stands on: one-line faults, run events, YAML with limits, the config's schema
(dataclasses, allowed values, error types) and the files of a run. No TensorFlow here."""
