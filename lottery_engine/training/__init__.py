"""One round of training: the engine's fused and stacked compiled steps, the recipes (learning rate,
weight decay, augmentation), the step clock, validation and early stop."""
