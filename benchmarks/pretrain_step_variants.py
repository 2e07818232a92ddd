r"""Interleaved A/B of kbert pre-training step variants, each change alone, in one process.

Each variant is the kbert step of `benchmarks/pretrain_throughput.py` (MLM + NSP, AdamW,
clipping, graph mode, no XLA) traced while one change is patched in (tf.function traces on
the first call, so the patch is active only while each step is built and warmed up). Then
`--rounds` rounds each time every variant over `--steps` steps in a rotating order, and the
per-round ratio variant/baseline is printed (median and min–max), so that background load
hits every variant alike.

Variants:
* `baseline`: kbert as it is.
* `fused_qkv`: one [H, 3H] projection for Q, K and V (the three kernels concatenated at
  call time; variables unchanged) and one transpose for all three.
* `fused_qkv_split`: the same one [H, 3H] projection, split along the last axis into Q, K
  and V, each then transposed to heads as kbert does (no 5-D transpose).
* `einsum_scores`: scores as `einsum("bhqd,bhkd->bhqk")` (BatchMatMul with adj_y) instead
  of an explicit transpose of K and a matmul.
* `fused_cross_entropy`: (kbert's loss since issue 17; this variant now changes nothing)
  the masked-LM and NSP cross-entropy as one
  `ops.sparse_categorical_crossentropy(from_logits=True)` (TensorFlow's fused
  SparseSoftmaxCrossEntropyWithLogits) instead of log_softmax + take_along_axis, whose
  gradient scatters into a dense [B*P, vocab] tensor.
* `no_dropout`: every dropout rate 0 — the upper bound on what cheaper dropout could save.
* `keras_dropout`: Keras' own dropout draw (a float32 per unit) in kbert's `Dropout` layers,
  kbert's before issue 17's `kbert.layers.dropout` (16 random bits per unit).
* `gelu_custom_gradient`: the exact GELU with a hand-written gradient
  (`dy * (cdf + x * pdf)`, 7 element-wise ops) instead of autodiff through
  `0.5 * x * erfc(-x / sqrt(2))`.
* `vocab_transpose_b`: the masked-LM logits as one 2-D MatMul with transpose_b instead of
  `matmul(x, transpose(table))` (which copies the [V, E] table into its transpose in the
  forward pass and again for its gradient).
* `layer_norm_custom_gradient`: every LayerNormalization over the last axis with a
  hand-written gradient (`dx = inv * (g - mean(g) - xhat * mean(g * xhat))`, g = dy * gamma)
  instead of autodiff through Keras' moments.
* `keras_argmax`: the accuracies' argmax by `keras.ops.argmax` (kbert's before issue 17's
  `tf.argmax`: Keras' TensorFlow backend rewrites -0.0 first, five passes over the logits).
* `decay_assign`: the decoupled weight decay as `w.assign(w * (1 - wd * lr))` (one read and
  one write of each decayed weight, the product's buffer taken over by the variable) instead
  of kbert's `w.assign_sub(w * (wd * lr))`.
* `keras_adamw`: Keras 3's own AdamW update, clipping and decay (kbert's before issue 17's
  fused update: a dozen element-wise ops per variable where kbert now runs one
  `ResourceApplyAdam`, `L2Loss` norms and one multiply for the decay).
* `compiled_adamw`: kbert's AdamW with `compiled_update` forced on (the decay and the Adam
  update of every variable as one XLA-compiled function: one fused loop per variable reads
  g, m, v and w once); kbert turns it on with `--xla_fusion=elementwise` (`auto` in bf16).
* `kernel_adamw`: `compiled_update` forced off (a decay pass, then one `ResourceApplyAdam`
  per variable): kbert without element-wise fusion.

    python benchmarks/pretrain_step_variants.py --variants=baseline,fused_qkv --rounds=6
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pretrain_throughput as bench  # noqa: E402


def _attend(self, q, k, v, padding_mask, training, return_attention, einsum_scores):
    """kbert's attention after the projections ([batch, heads, seq, head_size] each), with
    the scores by einsum (adj_y) or by an explicit transpose of K, as kbert does."""
    from keras import ops

    from kbert.layers.attention import padding_mask_to_bias
    q = q * ops.cast(1.0 / math.sqrt(self.head_size), q.dtype)
    scores = (ops.einsum("bhqd,bhkd->bhqk", q, k) if einsum_scores
              else ops.matmul(q, ops.transpose(k, (0, 1, 3, 2))))
    scores = ops.cast(scores, "float32")
    if padding_mask is not None:
        scores = scores + padding_mask_to_bias(padding_mask, "float32")
    probs = ops.softmax(scores, axis=-1)
    dropped = self.dropout_layer(ops.cast(probs, v.dtype), training=training)
    context = ops.transpose(ops.matmul(dropped, v), (0, 2, 1, 3))
    batch, seq = ops.shape(context)[0], ops.shape(context)[1]
    context = ops.reshape(context, (batch, seq, self.num_heads * self.head_size))
    output = self.output_dense(context)
    return (output, probs) if return_attention else output


def _fused_projection(self, x):
    """x @ [Wq | Wk | Wv] + [bq | bk | bv]: [batch, seq, 3 * hidden] (variables unchanged)."""
    from keras import ops
    kernel = ops.concatenate([ops.cast(d.kernel, x.dtype)
                              for d in (self.query, self.key, self.value)], axis=1)
    bias = ops.concatenate([ops.cast(d.bias, x.dtype)
                            for d in (self.query, self.key, self.value)], axis=0)
    return ops.matmul(x, kernel) + bias


def _fused_qkv_call(self, x, padding_mask=None, training=None, return_attention=False):
    from keras import ops
    batch, seq = ops.shape(x)[0], ops.shape(x)[1]
    qkv = ops.reshape(_fused_projection(self, x),
                      (batch, seq, 3, self.num_heads, self.head_size))
    qkv = ops.transpose(qkv, (2, 0, 3, 1, 4))
    return _attend(self, qkv[0], qkv[1], qkv[2], padding_mask, training, return_attention,
                   einsum_scores=True)


def _fused_qkv_split_call(self, x, padding_mask=None, training=None, return_attention=False):
    from keras import ops
    q, k, v = (self._split_heads(t) for t in ops.split(_fused_projection(self, x), 3, axis=-1))
    return _attend(self, q, k, v, padding_mask, training, return_attention, einsum_scores=False)


def _einsum_scores_call(self, x, padding_mask=None, training=None, return_attention=False):
    q, k, v = (self._split_heads(d(x)) for d in (self.query, self.key, self.value))
    return _attend(self, q, k, v, padding_mask, training, return_attention, einsum_scores=True)


def _fused_cross_entropy(labels, logits):
    from keras import ops
    return ops.sparse_categorical_crossentropy(labels, ops.cast(logits, "float32"),
                                               from_logits=True)


def _gelu_custom_gradient(x):
    import tensorflow as tf

    @tf.custom_gradient
    def gelu(x):
        cdf = 0.5 * tf.math.erfc(x * tf.cast(-0.7071067811865476, x.dtype))

        def grad(dy):
            pdf = tf.exp(tf.square(x) * tf.cast(-0.5, x.dtype)) * tf.cast(
                0.3989422804014327, x.dtype)
            return dy * (cdf + x * pdf)
        return x * cdf, grad
    return gelu(x)


def _vocab_transpose_b_call(self, sequence, masked_positions):
    import tensorflow as tf
    from keras import ops

    from kbert.models.heads import gather_positions
    x = gather_positions(sequence, masked_positions)
    x = self.layer_norm(self._activation_fn(self.transform_dense(x)))
    table = ops.cast(self.token_embedding.embeddings, x.dtype)
    rows = ops.reshape(x, (-1, ops.shape(x)[-1]))
    logits = ops.reshape(tf.linalg.matmul(rows, table, transpose_b=True),
                         (ops.shape(x)[0], ops.shape(x)[1], ops.shape(table)[0]))
    return ops.cast(logits, "float32") + ops.cast(self.output_bias, "float32")


def _layer_norm_custom_gradient_call(self, inputs):
    import tensorflow as tf
    from keras import ops
    epsilon = self.epsilon

    @tf.custom_gradient
    def norm(x, gamma, beta):
        x32 = tf.cast(x, tf.float32)
        mean = tf.reduce_mean(x32, -1, keepdims=True)
        centered = x32 - mean
        inv = tf.math.rsqrt(tf.reduce_mean(tf.square(centered), -1, keepdims=True) + epsilon)
        xhat = centered * inv

        def grad(dy):
            dy = tf.cast(dy, tf.float32)
            axes = list(range(len(x.shape) - 1))
            g = dy * gamma
            dx = inv * (g - tf.reduce_mean(g, -1, keepdims=True)
                        - xhat * tf.reduce_mean(g * xhat, -1, keepdims=True))
            return (tf.cast(dx, x.dtype), tf.reduce_sum(dy * xhat, axes),
                    tf.reduce_sum(dy, axes))
        return xhat * gamma + beta, grad
    return ops.cast(norm(inputs, tf.identity(self.gamma.value), tf.identity(self.beta.value)),
                    self.compute_dtype)


def _decay_by_assign(self, variables):
    """AdamW's decay as `w = w * (1 - wd * lr)` (kbert: `w -= w * (wd * lr)`)."""
    import keras
    import tensorflow as tf

    def distributed_apply_weight_decay(distribution, variables, **kwargs):
        def weight_decay_fn(variable):
            if self._use_weight_decay(variable):
                lr = tf.cast(self.learning_rate, variable.dtype)
                wd = tf.cast(self.weight_decay, variable.dtype)
                variable.assign(variable * (1 - wd * lr))

        for variable in variables:
            if isinstance(variable, keras.Variable):
                variable = variable.value
            distribution.extended.update(variable, weight_decay_fn, group=False)

    if self.weight_decay is not None:
        tf.__internal__.distribute.interim.maybe_merge_call(
            distributed_apply_weight_decay, self._distribution_strategy, variables)


def _graph_mode(self):
    import tensorflow as tf
    return not tf.executing_eagerly() and not self.amsgrad


def _never(self):
    return False


@contextlib.contextmanager
def patched(variant):
    """Patch `variant` into kbert while the block runs."""
    import keras

    from kbert.layers.attention import MultiHeadSelfAttention
    import importlib
    pretraining_losses = importlib.import_module("kbert.models.pretraining_losses")
    saved_loss = pretraining_losses._sparse_cross_entropy
    saved_top1 = pretraining_losses._top1
    calls = {"fused_qkv": _fused_qkv_call, "fused_qkv_split": _fused_qkv_split_call,
             "einsum_scores": _einsum_scores_call}
    from kbert.layers import activations
    from kbert.models.heads import MaskedLMHead
    saved_head_call = MaskedLMHead.call
    from kbert.training import optimizers
    saved_gelu = activations._ACTIVATIONS["gelu"]
    fused = {name: getattr(optimizers.AdamW, name)
             for name in ("update_step", "_clip_gradients", "_apply_weight_decay",
                          "_backend_update_step")}
    saved_compiled = optimizers.AdamW._compiled_update_applies
    from kbert.layers.dropout import Dropout as KbertDropout
    saved_call, saved_dropout = MultiHeadSelfAttention.call, keras.layers.Dropout.call
    saved_kbert_dropout = KbertDropout.call
    saved_layer_norm = keras.layers.LayerNormalization.call
    if variant in calls:
        MultiHeadSelfAttention.call = calls[variant]
    elif variant == "fused_cross_entropy":
        pretraining_losses._sparse_cross_entropy = _fused_cross_entropy
    elif variant == "keras_argmax":
        pretraining_losses._top1 = lambda logits: keras.ops.argmax(logits, axis=-1)
    elif variant == "no_dropout":
        keras.layers.Dropout.call = lambda self, inputs, training=False: inputs
        KbertDropout.call = keras.layers.Dropout.call
    elif variant == "vocab_transpose_b":
        MaskedLMHead.call = _vocab_transpose_b_call
    elif variant == "keras_dropout":
        KbertDropout.call = keras.layers.Dropout.call
    elif variant == "gelu_custom_gradient":
        activations._ACTIVATIONS["gelu"] = _gelu_custom_gradient
    elif variant == "layer_norm_custom_gradient":
        keras.layers.LayerNormalization.call = _layer_norm_custom_gradient_call
    elif variant == "decay_assign":
        optimizers.AdamW._apply_weight_decay = _decay_by_assign
        optimizers.AdamW._compiled_update_applies = _never   # (it decays in its own pass)
    elif variant == "compiled_adamw":
        optimizers.AdamW._compiled_update_applies = _graph_mode
    elif variant == "kernel_adamw":
        optimizers.AdamW._compiled_update_applies = _never
    elif variant == "keras_adamw":
        for name in fused:
            setattr(optimizers.AdamW, name, getattr(keras.optimizers.AdamW, name))
        optimizers.AdamW._compiled_update_applies = _never
    elif variant != "baseline":
        raise ValueError(f"unknown variant {variant!r}")
    try:
        yield
    finally:
        MultiHeadSelfAttention.call, keras.layers.Dropout.call = saved_call, saved_dropout
        pretraining_losses._sparse_cross_entropy = saved_loss
        pretraining_losses._top1 = saved_top1
        activations._ACTIVATIONS["gelu"] = saved_gelu
        MaskedLMHead.call = saved_head_call
        KbertDropout.call = saved_kbert_dropout
        keras.layers.LayerNormalization.call = saved_layer_norm
        for name, method in fused.items():
            setattr(optimizers.AdamW, name, method)
        optimizers.AdamW._compiled_update_applies = saved_compiled


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--variants", default="baseline,keras_adamw,keras_dropout,no_dropout,"
                        "gelu_custom_gradient,vocab_transpose_b,layer_norm_custom_gradient")
    parser.add_argument("--size", default="mini")
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--seq_length", type=int, default=128)
    parser.add_argument("--predictions", type=int, default=20)
    parser.add_argument("--vocab_size", type=int, default=30522)
    parser.add_argument("--precision", default="float32",
                        choices=["float32", "mixed_bfloat16"])
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--xla_fusion", default="none", choices=["auto", "none", "elementwise"],
                        help="trainers.pretrain's --xla_fusion, for every variant")
    args = parser.parse_args(argv)
    from kbert.training import xla_fusion
    args.xla_fusion = xla_fusion.apply_xla_fusion(args.xla_fusion, args.precision)
    bench.console.import_tensorflow()
    import keras
    keras.mixed_precision.set_global_policy(args.precision)
    features = bench.synthetic_batch(args.batch_size, args.seq_length, args.predictions,
                                     args.vocab_size)
    names = args.variants.split(",")
    print(f"config: size={args.size} batch={args.batch_size} seq={args.seq_length} "
          f"precision={args.precision} xla_fusion={args.xla_fusion} variants={names} "
          f"rounds={args.rounds} steps={args.steps} load={os.getloadavg()[0]:.2f} "
          f"cpu={bench.cpu_name()}", flush=True)
    steps = {}
    for name in names:
        with patched(name):
            step, _cleanup = bench.kbert_step(args, features, jit_compile=False)
            for _ in range(args.warmup):
                step()
        steps[name] = step
    per_round = {name: [] for name in names}
    for round_index in range(args.rounds):
        order = names[round_index % len(names):] + names[:round_index % len(names)]
        for name in order:
            per_round[name].append(args.batch_size / bench.window(steps[name], args.steps))
        print(f"round {round_index + 1}: " + ", ".join(
            f"{n} {per_round[n][-1]:.1f}" for n in names) + " sequences/s", flush=True)
    for name in names:
        print(f"{name:>14}: {bench.summary(per_round[name])[1]} sequences/s")
        if name != names[0]:
            ratios = [a / b for a, b in zip(per_round[name], per_round[names[0]])]
            print(f"{name + '/' + names[0]:>24}: {bench.summary(ratios)[1]}x (per round)")
    return per_round


if __name__ == "__main__":
    main()
