"""Each optimizer's fused update, one small unit per optimizer on a shared base (as Keras keeps
`optimizers/adam.py` on `base_optimizer.py`): `train.optimizer` names one of `FUSED_UPDATES`.

train_step.FusedOptimizer holds the variables, their slots and the step count, and asks the unit
to update one variable: one fused TensorFlow kernel each (`ResourceApplyAdam`,
`ResourceApplyKerasMomentum` or `ResourceApplyMomentum`, `ResourceApplyGradientDescent`), the
same arithmetic as Keras' Adam and SGD, or PyTorch's SGD (`momentum_form: pytorch`). Adding an
optimizer is a class here, one line in `FUSED_UPDATES` and its name in config's OPTIMIZERS (which
stays free of TensorFlow; tests/training/test_train_step.py checks that the two agree).
"""

from __future__ import annotations

import keras
import tensorflow as tf

from ..config.schema import TrainConfig

ADAM_BETAS, ADAM_EPSILON = (0.9, 0.999), 1e-7  # Keras' Adam defaults, as the Keras path uses


# SGD with momentum in two forms, equal while the learning rate is constant and apart for ~1/(1-μ)
# steps after it changes. keras: v = μ·v − lr·g, w += v (Nesterov: w += μ·v − lr·g); the rate
# is folded into the velocity. pytorch (OpenLTH's torch.optim.SGD): v = μ·v + g, w −= lr·v
# (Nesterov: w −= lr·(g + μ·v)); a new rate applies at once to all the velocity.
MOMENTUM_KERNELS = {"keras": tf.raw_ops.ResourceApplyKerasMomentum,
                    "pytorch": tf.raw_ops.ResourceApplyMomentum}


class FusedUpdate:
    """One optimizer's update of one variable, in a traced function. `slots` is how many state
    tensors of the variable's shape it keeps (moments, velocity), zeroed at each reset."""

    slots = 0

    def __init__(self, cfg: TrainConfig) -> None:
        self.cfg = cfg

    def decay(self, variable: tf.Variable, gradient: tf.Tensor,
              learning_rate: tf.Tensor) -> tf.Tensor:
        """Weight decay for a decayed variable: L2 added to the gradient (as OpenLTH's SGD)."""
        return gradient + self.cfg.weight_decay * variable

    def update(self, variable: tf.Variable, slots: list[tf.Variable], gradient: tf.Tensor,
               learning_rate: tf.Tensor, iterations: tf.Variable) -> None:
        """Apply one step to `variable`, `iterations` being the step count after this step."""
        raise NotImplementedError

    def keras_optimizer(self) -> keras.optimizers.Optimizer:
        """Keras' optimizer of this kind at the run's (peak) rate: the Keras fit path trains with
        it, and tickets and exports are saved compiled with a fresh one, so that a loaded file
        says which optimizer the run used."""
        raise NotImplementedError


class Adam(FusedUpdate):
    """Keras' Adam (its default betas and epsilon): first and second moments."""

    slots = 2

    def update(self, variable: tf.Variable, slots: list[tf.Variable], gradient: tf.Tensor,
               learning_rate: tf.Tensor, iterations: tf.Variable) -> None:
        t = tf.cast(iterations, tf.float32)
        tf.raw_ops.ResourceApplyAdam(
            var=variable.handle, m=slots[0].handle, v=slots[1].handle,
            beta1_power=ADAM_BETAS[0] ** t, beta2_power=ADAM_BETAS[1] ** t, lr=learning_rate,
            beta1=ADAM_BETAS[0], beta2=ADAM_BETAS[1], epsilon=ADAM_EPSILON, grad=gradient,
            use_locking=False)

    def keras_optimizer(self) -> keras.optimizers.Optimizer:
        return keras.optimizers.Adam(self.cfg.learning_rate, beta_1=ADAM_BETAS[0],
                                     beta_2=ADAM_BETAS[1], epsilon=ADAM_EPSILON)


class AdamW(Adam):
    """Adam with decoupled weight decay: the variable shrinks by lr·decay before the Adam step,
    as Keras' AdamW, and the gradient is left as it is."""

    def decay(self, variable: tf.Variable, gradient: tf.Tensor,
              learning_rate: tf.Tensor) -> tf.Tensor:
        variable.assign_sub(variable * learning_rate * self.cfg.weight_decay)
        return gradient

    def keras_optimizer(self) -> keras.optimizers.Optimizer:
        return keras.optimizers.AdamW(self.cfg.learning_rate, self.cfg.weight_decay,
                                      beta_1=ADAM_BETAS[0], beta_2=ADAM_BETAS[1],
                                      epsilon=ADAM_EPSILON)


class SGD(FusedUpdate):
    """SGD: heavy-ball or Nesterov momentum in Keras' or PyTorch's form (`momentum_form`), or
    plain gradient descent with momentum 0 (its velocity slot then stays unused)."""

    slots = 1

    def update(self, variable: tf.Variable, slots: list[tf.Variable], gradient: tf.Tensor,
               learning_rate: tf.Tensor, iterations: tf.Variable) -> None:
        cfg = self.cfg
        if cfg.momentum:
            MOMENTUM_KERNELS[cfg.momentum_form](
                var=variable.handle, accum=slots[0].handle, lr=learning_rate, grad=gradient,
                momentum=cfg.momentum, use_locking=False, use_nesterov=cfg.nesterov)
        else:
            tf.raw_ops.ResourceApplyGradientDescent(var=variable.handle, alpha=learning_rate,
                                                    delta=gradient, use_locking=False)

    def keras_optimizer(self) -> keras.optimizers.Optimizer:
        return keras.optimizers.SGD(self.cfg.learning_rate, momentum=self.cfg.momentum,
                                    nesterov=self.cfg.nesterov)


FUSED_UPDATES: dict[str, type[FusedUpdate]] = {"adam": Adam, "sgd": SGD, "adamw": AdamW}
