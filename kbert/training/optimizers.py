"""AdamW and LAMB for pre-training: weight decay that skips LayerNorm and biases, global-norm
clipping, and (for custom distributed loops) gradients that the caller already all-reduced.

Example:
    >>> import keras
    >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3),
    ...                           keras.layers.LayerNormalization()])
    >>> [v.path for v in weight_decay_exclusions(model)]
    ['sequential/dense/bias', 'sequential/layer_normalization/gamma', 'sequential/layer_normalization/beta']
    >>> optimizer = create_optimizer("lamb", 1e-3, weight_decay=0.01, clip_norm=1.0, model=model)
"""

from __future__ import annotations

import re
from typing import Iterable

import keras
import tensorflow as tf
from keras import ops

# As google-research/bert's AdamWeightDecayOptimizer: never decay LayerNorm or biases.
DEFAULT_DECAY_EXCLUDE_PATTERNS = ("LayerNorm", "layer_norm", "bias")
OPTIMIZER_NAMES = ("adamw", "lamb")


def weight_decay_exclusions(model: keras.Model,
                            patterns: Iterable[str] = DEFAULT_DECAY_EXCLUDE_PATTERNS) -> list:
    """Trainable variables that must not be decayed: every weight of a LayerNormalization
    layer, and every variable whose path matches one of `patterns` (regular expressions)."""
    regex = re.compile("|".join(patterns)) if patterns else None
    layer_norm_ids = set()
    for layer in model._flatten_layers(include_self=False):
        if isinstance(layer, keras.layers.LayerNormalization):
            layer_norm_ids.update(id(w) for w in layer.weights)
    return [v for v in model.trainable_variables
            if id(v) in layer_norm_ids or (regex is not None and regex.search(v.path))]


class _CallerReducedGradientsMixin:
    """With `gradients_reduced=True` the optimizer trusts that the gradients it receives in a
    replica context are already summed over replicas (the training loop all-reduces them
    before clipping, so the clip sees the global norm) and skips Keras's own all-reduce."""

    def _all_reduce_sum_gradients(self, grads_and_vars):
        if self.gradients_reduced:
            return list(grads_and_vars)
        return super()._all_reduce_sum_gradients(grads_and_vars)


def _resource_handle(variable):
    """The TensorFlow resource handle of a Keras or tf.Variable (inside a distribution
    strategy's `update`, the current replica's component), or None."""
    if isinstance(variable, keras.Variable):
        variable = variable.value
    try:
        return variable.handle
    except (AttributeError, ValueError):
        return None


def _dense(gradient):
    return tf.convert_to_tensor(gradient) if isinstance(gradient, tf.IndexedSlices) else gradient


@keras.saving.register_keras_serializable(package="kbert")
class AdamW(_CallerReducedGradientsMixin, keras.optimizers.AdamW):
    """Keras AdamW (decoupled decay `w -= lr * weight_decay * w`, as PyTorch's AdamW), with
    the same values computed in fewer passes over memory:

    - each variable's Adam update is one fused `ResourceApplyAdam` kernel (m, v and the
      variable read and written once, as Keras 2 / tf_keras applied Adam) instead of Keras
      3's dozen element-wise ops, each a pass over the variable;
    - the global gradient norm for clipping sums `L2Loss` per gradient (one read, no
      squared copy; what `tf.clip_by_global_norm` does);
    - the decay multiplies each variable once (`w * (wd * lr)`), not twice;
    - with `compiled_update=True`, on one device and inside a traced step, the decay and the
      Adam update of every variable run as one XLA-compiled function instead: one fused loop
      per variable reads g, m, v and w once (the decay is no separate pass). Measured on
      the bf16 pre-training step with XLA element-wise fusion: 1.02-1.07x (BUILD_NOTES,
      issue 17); `trainers.pretrain` turns it on with `--xla_fusion`.

    Args:
        gradients_reduced: see `_CallerReducedGradientsMixin`; False behaves as Keras AdamW.
        compiled_update: the decay and update as one XLA function where it applies (one
            replica, graph mode, no amsgrad); the per-variable kernels elsewhere.
        **kwargs: `keras.optimizers.AdamW` arguments.

    Example:
        >>> AdamW(learning_rate=1e-3, weight_decay=0.01).weight_decay
        0.01
    """

    def __init__(self, gradients_reduced: bool = False, compiled_update: bool = False,
                 **kwargs):
        super().__init__(**kwargs)
        self.gradients_reduced = bool(gradients_reduced)
        self.compiled_update = bool(compiled_update)

    def _compiled_update_applies(self) -> bool:
        """One replica (no strategy, or OneDeviceStrategy), a traced step, no amsgrad."""
        if not self.compiled_update or self.amsgrad or tf.executing_eagerly():
            return False
        return (not tf.distribute.has_strategy()
                or isinstance(tf.distribute.get_strategy(), tf.distribute.OneDeviceStrategy))

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        if not self._compiled_update_applies():
            return super()._backend_update_step(grads, trainable_variables, learning_rate)
        variables = [v.value if isinstance(v, keras.Variable) else v
                     for v in trainable_variables]
        index = [self._get_variable_index(v) for v in variables]
        momentums = [self._momentums[i].value for i in index]
        velocities = [self._velocities[i].value for i in index]
        decayed = [self.weight_decay is not None and self._use_weight_decay(v)
                   for v in variables]
        beta_1, beta_2 = float(self.beta_1), float(self.beta_2)
        epsilon, weight_decay = float(self.epsilon), float(self.weight_decay or 0.0)

        @tf.function(jit_compile=True, autograph=False)
        def decay_and_update(grads, lr, step):
            alpha = lr * tf.sqrt(1 - beta_2 ** step) / (1 - beta_1 ** step)
            for g, w, m, v, decay in zip(grads, variables, momentums, velocities, decayed):
                g = tf.cast(g, w.dtype)
                m_new = m + (g - m) * (1 - beta_1)
                v_new = v + (tf.square(g) - v) * (1 - beta_2)
                m.assign(m_new)
                v.assign(v_new)
                kept = w * (1 - weight_decay * lr) if decay else w
                w.assign(kept - alpha * m_new / (tf.sqrt(v_new) + epsilon))

        decay_and_update([_dense(g) for g in grads], tf.cast(learning_rate, tf.float32),
                         tf.cast(self.iterations + 1, tf.float32))

    def update_step(self, gradient, variable, learning_rate):
        handle = _resource_handle(variable)
        if self.amsgrad or handle is None:
            return super().update_step(gradient, variable, learning_rate)
        index = self._get_variable_index(variable)
        dtype = variable.dtype
        step = ops.cast(self.iterations + 1, dtype)
        beta_1, beta_2 = ops.cast(self.beta_1, dtype), ops.cast(self.beta_2, dtype)
        tf.raw_ops.ResourceApplyAdam(
            var=handle, m=_resource_handle(self._momentums[index]),
            v=_resource_handle(self._velocities[index]),
            beta1_power=ops.power(beta_1, step), beta2_power=ops.power(beta_2, step),
            lr=ops.cast(learning_rate, dtype), beta1=beta_1, beta2=beta_2,
            epsilon=ops.cast(self.epsilon, dtype), grad=ops.cast(_dense(gradient), dtype))

    def _clip_gradients(self, grads):
        if not (self.global_clipnorm and self.global_clipnorm > 0) or self.clipnorm:
            return super()._clip_gradients(grads)
        dense = [None if g is None else _dense(g) for g in grads]
        present = [g for g in dense if g is not None]
        clipped, _ = tf.clip_by_global_norm(present, self.global_clipnorm)
        clipped = iter(clipped)
        return [None if g is None else next(clipped) for g in dense]

    def _apply_weight_decay(self, variables):
        if self.weight_decay is None or self._compiled_update_applies():
            return   # (the compiled update decays inside its fused loop)

        def distributed_apply_weight_decay(distribution, variables, **kwargs):
            def weight_decay_fn(variable):
                if self._use_weight_decay(variable):
                    lr = tf.cast(self.learning_rate, variable.dtype)
                    wd = tf.cast(self.weight_decay, variable.dtype)
                    variable.assign_sub(variable * (wd * lr))

            for variable in variables:
                if isinstance(variable, keras.Variable):
                    variable = variable.value
                distribution.extended.update(variable, weight_decay_fn, group=False)

        tf.__internal__.distribute.interim.maybe_merge_call(
            distributed_apply_weight_decay, self._distribution_strategy, variables)

    def get_config(self):
        return {**super().get_config(), "gradients_reduced": self.gradients_reduced,
                "compiled_update": self.compiled_update}


@keras.saving.register_keras_serializable(package="kbert")
class Lamb(_CallerReducedGradientsMixin, keras.optimizers.Optimizer):
    """LAMB (You et al. 2019, "Large Batch Optimization for Deep Learning", Algorithm 2).

    Per variable `x` with gradient `g` at step `t`:
    `m = b1 m + (1-b1) g`, `v = b2 v + (1-b2) g^2`, `r = m_hat / (sqrt(v_hat) + eps)`,
    `u = r + weight_decay * x` (decay skipped for excluded variables),
    `x -= lr * (||x|| / ||u||) * u`, with trust ratio 1 where either norm is 0 and for
    variables excluded from decay (LayerNorm, biases; as NVIDIA's and TF-Addons' LAMB).
    Unlike `keras.optimizers.Lamb`, the decay sits inside the trust ratio, as in the paper.

    Args:
        learning_rate: float or schedule.
        beta_1, beta_2, epsilon: moment decay rates and the denominator epsilon.
        weight_decay: decay rate inside the update (0 for none).
        gradients_reduced: see `_CallerReducedGradientsMixin`.
        **kwargs: base `keras.optimizers.Optimizer` arguments (`global_clipnorm`, `name`...).

    Example:
        >>> import numpy as np
        >>> w = keras.Variable(np.ones(3, "float32"))
        >>> opt = Lamb(learning_rate=0.1); opt.apply([np.ones(3, "float32")], [w])
        >>> [round(float(x), 4) for x in w.numpy()]   # |x| / |u| = 1 -> step of lr * u
        [0.9, 0.9, 0.9]
    """

    def __init__(self, learning_rate=1e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-6,
                 weight_decay=0.0, gradients_reduced: bool = False, **kwargs):
        kwargs.pop("weight_decay", None)
        super().__init__(learning_rate=learning_rate, weight_decay=None, **kwargs)
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.lamb_weight_decay = float(weight_decay or 0.0)
        self.gradients_reduced = bool(gradients_reduced)

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._momentums, self._velocities = self.add_optimizer_variables(
            var_list, ["momentum", "velocity"])

    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        lr = ops.cast(learning_rate, dtype)
        gradient = ops.cast(gradient, dtype)
        step = ops.cast(self.iterations + 1, dtype)
        m = self._momentums[self._get_variable_index(variable)]
        v = self._velocities[self._get_variable_index(variable)]
        self.assign(m, self.beta_1 * m + (1.0 - self.beta_1) * gradient)
        self.assign(v, self.beta_2 * v + (1.0 - self.beta_2) * ops.square(gradient))
        m_hat = m / (1.0 - ops.power(ops.cast(self.beta_1, dtype), step))
        v_hat = v / (1.0 - ops.power(ops.cast(self.beta_2, dtype), step))
        update = m_hat / (ops.sqrt(v_hat) + self.epsilon)
        if self._use_weight_decay(variable):
            if self.lamb_weight_decay:
                update = update + self.lamb_weight_decay * variable
            w_norm = ops.sqrt(ops.sum(ops.square(variable)))
            u_norm = ops.sqrt(ops.sum(ops.square(update)))
            ratio = ops.where(ops.logical_and(w_norm > 0, u_norm > 0),
                              w_norm / ops.maximum(u_norm, 1e-30), ops.ones_like(w_norm))
            update = ratio * update
        self.assign_sub(variable, lr * update)

    def get_config(self):
        config = super().get_config()
        config.update(beta_1=self.beta_1, beta_2=self.beta_2, epsilon=self.epsilon,
                      weight_decay=self.lamb_weight_decay,
                      gradients_reduced=self.gradients_reduced)
        return config


def create_optimizer(name: str, learning_rate, weight_decay: float = 0.01,
                     clip_norm: float | None = 1.0, model: keras.Model | None = None,
                     beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-6,
                     gradients_reduced: bool = False, compiled_update: bool = False,
                     exclude_patterns: Iterable[str] = DEFAULT_DECAY_EXCLUDE_PATTERNS):
    """AdamW or LAMB with decay excluded from `model`'s LayerNorm weights and biases.

    Args:
        name: "adamw" or "lamb".
        learning_rate: float or `LearningRateSchedule`.
        weight_decay: decay rate (0 disables).
        clip_norm: clip the (global) gradient to this global norm; None or 0 disables.
        model: the model whose variables are being trained (needed for the exclusions when
            weight_decay > 0; the model must be built).
        gradients_reduced: True when the caller all-reduces gradients itself.
        compiled_update: AdamW only: decay and update as one XLA function (see `AdamW`).

    Example:
        >>> create_optimizer("adamw", 1e-4, weight_decay=0.0).name
        'adamw'
    """
    if name not in OPTIMIZER_NAMES:
        raise ValueError(f"optimizer must be one of {OPTIMIZER_NAMES}, got {name!r}")
    if weight_decay < 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
    if weight_decay and model is None:
        raise ValueError("create_optimizer needs `model` to exclude LayerNorm and biases "
                         "from weight decay")
    common = dict(learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon,
                  global_clipnorm=clip_norm if clip_norm else None,
                  gradients_reduced=gradients_reduced, name=name)
    if name == "adamw":
        optimizer = AdamW(weight_decay=float(weight_decay), compiled_update=compiled_update,
                          **common)
    else:
        optimizer = Lamb(weight_decay=weight_decay, **common)
    if model is not None:
        optimizer.exclude_from_weight_decay(
            var_list=weight_decay_exclusions(model, exclude_patterns))
    return optimizer
