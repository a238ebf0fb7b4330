"""What every wing stands on: one-line faults, run events, YAML with limits, the files of a run and
the private Keras attributes the engine reads (keras_internals). No TensorFlow here."""
