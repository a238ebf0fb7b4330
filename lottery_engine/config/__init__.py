"""Reading a config: YAML into a validated Config, every error at once. It sits above data and
models because reading a config also checks, by default, the files it names (the data and its
splits, a model file, VGG16 weights)."""
