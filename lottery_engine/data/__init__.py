"""Datasets: each source (bundled, Keras, an image folder, the user's arrays or csv) into arrays,
the seeded stratified split, and the caches (Keras downloads, a frozen base's features)."""
