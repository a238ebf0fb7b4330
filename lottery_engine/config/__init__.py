"""Reading a config: YAML into a validated Config, every error at once, reading nothing but the
config itself (the files it names are checked by preflight.py). Above foundations only."""
