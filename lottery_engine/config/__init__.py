"""A config: its schema (dataclasses, allowed values, error types), YAML read into a validated
Config with every error at once, reading nothing but the config itself (the files it names are
checked by preflight.py). Right above foundations."""
