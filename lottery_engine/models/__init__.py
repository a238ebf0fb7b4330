"""Networks: the built-in and literature architectures, and the user's own model file or factory."""
