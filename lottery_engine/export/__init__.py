"""A ticket you can ship: the compact Keras model and TFLite files, what each buys (measured), the
record of a run's exports and their downloads."""
