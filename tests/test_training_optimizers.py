"""AdamW against PyTorch's AdamW, LAMB against the paper's algorithm written out in numpy,
weight-decay exclusions checked by what an update actually does to each variable."""

import keras
import numpy as np
import pytest
import tensorflow as tf
import torch

from kbert.configs import BertConfig
from kbert.models import BertEncoder, BertPretrainer
from kbert.training.optimizers import AdamW, Lamb, create_optimizer, weight_decay_exclusions


def _tiny_pretrainer():
    model = BertPretrainer(BertEncoder(BertConfig.named("tiny", vocab_size=64)),
                           name="bert_pretrainer")
    model(model.example_inputs())
    return model


def _google_excluded(path):
    # google-research/bert's AdamWeightDecayOptimizer: exclude_from_weight_decay=
    # ["LayerNorm", "layer_norm", "bias"], matched against the variable name.
    return any(word in path for word in ("LayerNorm", "layer_norm", "bias"))


def test_exclusions_cover_layer_norms_and_biases_only():
    model = _tiny_pretrainer()
    excluded = {v.path for v in weight_decay_exclusions(model)}
    assert excluded == {v.path for v in model.trainable_variables if _google_excluded(v.path)}
    # Spot checks with the names written out.
    assert "embeddings/token_embedding/embeddings" not in excluded
    assert "transformer_layer_0/attention/query/kernel" not in excluded
    assert "transformer_layer_1/feed_forward_layer_norm/gamma" in excluded
    assert "bert_pretrainer/mlm_head/output_bias" in excluded


@pytest.mark.parametrize("name", ["adamw", "lamb"])
def test_only_non_excluded_variables_are_decayed(name):
    """With zero gradients the moments stay zero, so only decay can move a weight."""
    model = _tiny_pretrainer()
    before = {v.path: v.numpy().copy() for v in model.trainable_variables}
    optimizer = create_optimizer(name, 0.1, weight_decay=0.5, clip_norm=None, model=model)
    optimizer.apply([tf.zeros_like(v) for v in model.trainable_variables],
                    model.trainable_variables)
    for variable in model.trainable_variables:
        old, new = before[variable.path], variable.numpy()
        if _google_excluded(variable.path):
            np.testing.assert_array_equal(new, old, err_msg=variable.path)
        elif name == "adamw":   # decoupled: w <- w - lr * wd * w
            np.testing.assert_allclose(new, old * (1 - 0.1 * 0.5), rtol=1e-6,
                                       err_msg=variable.path)
        else:   # LAMB: u = wd * w, trust ratio |w| / |u| = 1 / wd, so w <- w - lr * w
            np.testing.assert_allclose(new, old * (1 - 0.1), rtol=1e-5, atol=1e-7,
                                       err_msg=variable.path)


def _random_gradients(shapes, steps, seed, scales):
    rng = np.random.default_rng(seed)
    return [[(rng.standard_normal(s) * scale).astype(np.float32) for s in shapes]
            for scale in scales[:steps]]


@pytest.mark.parametrize("clip_norm", [None, 1.0])
def test_adamw_matches_pytorch(clip_norm):
    rng = np.random.default_rng(0)
    shapes = [(5, 3), (3,)]
    init = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    # Gradient norms on both sides of the clip threshold.
    grads = _random_gradients(shapes, 6, 1, scales=[3.0, 0.1, 2.0, 0.05, 5.0, 0.2])

    # Keras adds epsilon to sqrt(v) before bias correction, PyTorch after it; with a small
    # epsilon the two agree to float precision.
    variables = [keras.Variable(w.copy()) for w in init]
    ours = AdamW(learning_rate=1e-2, weight_decay=0.1, global_clipnorm=clip_norm,
                 epsilon=1e-9, beta_2=0.99)
    torch_params = [torch.nn.Parameter(torch.tensor(w.copy())) for w in init]
    reference = torch.optim.AdamW(torch_params, lr=1e-2, betas=(0.9, 0.99), eps=1e-9,
                                  weight_decay=0.1)
    for step_grads in grads:
        ours.apply([tf.constant(g) for g in step_grads], variables)
        for p, g in zip(torch_params, step_grads):
            p.grad = torch.tensor(g)
        if clip_norm:
            torch.nn.utils.clip_grad_norm_(torch_params, clip_norm)
        reference.step()
    for v, p in zip(variables, torch_params):
        np.testing.assert_allclose(v.numpy(), p.detach().numpy(), rtol=2e-5, atol=2e-6)
    if clip_norm:   # the clip changed the result (the test can tell clipped from unclipped)
        unclipped = [keras.Variable(w.copy()) for w in init]
        plain = AdamW(learning_rate=1e-2, weight_decay=0.1, epsilon=1e-9, beta_2=0.99)
        for step_grads in grads:
            plain.apply([tf.constant(g) for g in step_grads], unclipped)
        assert not np.allclose(unclipped[0].numpy(), variables[0].numpy(), atol=1e-4)


def test_compiled_update_matches_pytorch_and_runs_as_one_xla_function():
    """`compiled_update=True` in a traced step: the decay and Adam of every variable as one
    XLA function (no ResourceApplyAdam, no separate decay), PyTorch's AdamW values, the
    decay skipped for an excluded variable."""
    rng = np.random.default_rng(5)
    shapes = [(6, 4), (4,)]
    init = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    grads = _random_gradients(shapes, 5, 6, scales=[3.0, 0.1, 2.0, 0.05, 5.0])
    variables = [keras.Variable(w.copy()) for w in init]
    ours = AdamW(learning_rate=1e-2, weight_decay=0.1, global_clipnorm=1.0, epsilon=1e-9,
                 beta_2=0.99, compiled_update=True)
    ours.exclude_from_weight_decay(var_list=[variables[1]])
    step = tf.function(lambda g: ours.apply(g, variables))
    torch_params = [torch.nn.Parameter(torch.tensor(w.copy())) for w in init]
    reference = torch.optim.AdamW([{"params": [torch_params[0]], "weight_decay": 0.1},
                                   {"params": [torch_params[1]], "weight_decay": 0.0}],
                                  lr=1e-2, betas=(0.9, 0.99), eps=1e-9)
    for step_grads in grads:
        step([tf.constant(g) for g in step_grads])
        for p, g in zip(torch_params, step_grads):
            p.grad = torch.tensor(g)
        torch.nn.utils.clip_grad_norm_(torch_params, 1.0)
        reference.step()
    for v, p in zip(variables, torch_params):
        np.testing.assert_allclose(v.numpy(), p.detach().numpy(), rtol=2e-5, atol=2e-6)
    graph = step.get_concrete_function([tf.constant(g) for g in grads[0]]).graph
    op_types = {op.type for op in graph.get_operations()}
    assert "ResourceApplyAdam" not in op_types and "AssignSubVariableOp" not in op_types
    compiled = [f for f in graph.as_graph_def().library.function
                if f.attr["_XlaMustCompile"].b]
    assert compiled, "the update is not an XLA-compiled function"
    # Eagerly (and under a multi-replica strategy) the per-variable kernels run instead.
    eager = AdamW(learning_rate=1e-2, compiled_update=True)
    assert not eager._compiled_update_applies()


def test_compiled_update_under_loss_scaling_equals_the_kernels_and_skips_non_finite_steps():
    """mixed_float16 wraps AdamW in Keras' LossScaleOptimizer, which applies inside a
    `cond` on the gradients being finite: the compiled update must behave as the kernels
    there, a non-finite step included (skipped: the weights keep their values)."""
    def train(compiled):
        w = keras.Variable(np.linspace(-1, 1, 12, dtype=np.float32).reshape(4, 3))
        b = keras.Variable(np.zeros(3, np.float32))
        optimizer = keras.optimizers.LossScaleOptimizer(
            AdamW(learning_rate=1e-2, weight_decay=0.1, compiled_update=compiled))
        optimizer.build([w, b])

        @tf.function
        def step(x):
            with tf.GradientTape() as tape:
                scaled = optimizer.scale_loss(tf.reduce_sum(tf.square(x @ w + b)))
            optimizer.apply(tape.gradient(scaled, [w, b]), [w, b])

        history = []
        for x in ([[1.0] * 4] * 2, [[2.0] * 4] * 2, [[np.inf] * 4, [1.0] * 4], [[3.0] * 4] * 2):
            step(tf.constant(x, tf.float32))
            history.append((w.numpy().copy(), b.numpy().copy()))
        return history

    compiled, kernels = train(True), train(False)
    for (cw, cb), (kw, kb) in zip(compiled, kernels):
        np.testing.assert_allclose(cw, kw, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(cb, kb, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(compiled[2][0], compiled[1][0])   # the inf step skipped
    assert not np.allclose(compiled[3][0], compiled[1][0])

def _numpy_lamb(weights, grads_per_step, lr, beta_1, beta_2, eps, weight_decay, decayed):
    """You et al. 2019, Algorithm 2 (LAMB) with bias correction and phi(z) = z."""
    weights = [w.astype(np.float64).copy() for w in weights]
    m = [np.zeros_like(w) for w in weights]
    v = [np.zeros_like(w) for w in weights]
    for t, grads in enumerate(grads_per_step, start=1):
        for i, g in enumerate(grads):
            m[i] = beta_1 * m[i] + (1 - beta_1) * g
            v[i] = beta_2 * v[i] + (1 - beta_2) * g * g
            r = (m[i] / (1 - beta_1 ** t)) / (np.sqrt(v[i] / (1 - beta_2 ** t)) + eps)
            if decayed[i]:
                u = r + weight_decay * weights[i]
                w_norm, u_norm = np.linalg.norm(weights[i]), np.linalg.norm(u)
                ratio = w_norm / u_norm if w_norm > 0 and u_norm > 0 else 1.0
            else:
                u, ratio = r, 1.0
            weights[i] = weights[i] - lr * ratio * u
    return weights


def test_lamb_matches_the_paper_algorithm():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3),
                              keras.layers.LayerNormalization()])
    rng = np.random.default_rng(3)
    init = [rng.standard_normal(v.shape).astype(np.float32) for v in model.trainable_variables]
    for v, w in zip(model.trainable_variables, init):
        v.assign(w)
    decayed = [not _google_excluded(v.path) for v in model.trainable_variables]
    assert decayed == [True, False, False, False]   # kernel; bias, gamma, beta excluded
    grads = _random_gradients([w.shape for w in init], 5, 4, scales=[1.0, 2.0, 0.5, 1.0, 3.0])
    optimizer = create_optimizer("lamb", 0.05, weight_decay=0.01, clip_norm=None,
                                 model=model, beta_1=0.9, beta_2=0.999, epsilon=1e-6)
    for step_grads in grads:
        optimizer.apply([tf.constant(g) for g in step_grads], model.trainable_variables)
    expected = _numpy_lamb(init, grads, 0.05, 0.9, 0.999, 1e-6, 0.01, decayed)
    for v, e in zip(model.trainable_variables, expected):
        np.testing.assert_allclose(v.numpy(), e, rtol=1e-4, atol=1e-6, err_msg=v.path)


def test_lamb_config_round_trip():
    optimizer = Lamb(learning_rate=0.1, weight_decay=0.02, gradients_reduced=True)
    clone = Lamb.from_config(optimizer.get_config())
    assert clone.lamb_weight_decay == 0.02 and clone.gradients_reduced


def test_bad_optimizer_arguments():
    with pytest.raises(ValueError, match="optimizer must be one of"):
        create_optimizer("sgd", 1e-3, weight_decay=0.0)
    with pytest.raises(ValueError, match="needs `model`"):
        create_optimizer("adamw", 1e-3, weight_decay=0.01)
    with pytest.raises(ValueError, match="weight_decay"):
        create_optimizer("adamw", 1e-3, weight_decay=-1.0)


def test_fused_adamw_matches_keras_adamw_and_runs_one_kernel_per_variable():
    """kbert's AdamW (one ResourceApplyAdam per variable, L2Loss norms, one decay multiply)
    gives Keras 3 AdamW's values in graph mode, with an embedding's sparse gradient, a
    decay exclusion and the clip both active and not. Keras gets the gradients densified:
    given the IndexedSlices of an embedding whose ids repeat, its global norm sums the
    squares of each repeat's row instead of the square of their sum (kbert densifies)."""
    rng = np.random.default_rng(3)
    init = [rng.standard_normal(s).astype(np.float32) for s in [(50, 8), (8, 6), (6,)]]
    ids = tf.constant([[1, 4, 4, 9], [0, 49, 3, 3]])

    def train(optimizer_class, densify):
        table, kernel, bias = (keras.Variable(w.copy()) for w in init)
        optimizer = optimizer_class(learning_rate=1e-2, weight_decay=0.1, global_clipnorm=1.0,
                                    epsilon=1e-6)
        optimizer.exclude_from_weight_decay(var_list=[bias])
        optimizer.build([table, kernel, bias])

        @tf.function
        def step(scale):
            with tf.GradientTape() as tape:
                hidden = tf.gather(table, ids)            # IndexedSlices gradient
                loss = scale * tf.reduce_sum(tf.tanh(hidden @ kernel + bias))
            grads = tape.gradient(loss, [table, kernel, bias])
            if densify:
                grads = [tf.convert_to_tensor(g) for g in grads]
            optimizer.apply(grads, [table, kernel, bias])

        for scale in [5.0, 0.01, 2.0, 0.001]:     # gradient norms above and below the clip
            step(tf.constant(scale))
        ops = {op.type for op in step.get_concrete_function(
            tf.TensorSpec([], tf.float32)).graph.get_operations()}
        return [v.numpy() for v in (table, kernel, bias)], ops

    ours, our_ops = train(AdamW, densify=False)
    reference, reference_ops = train(keras.optimizers.AdamW, densify=True)
    for a, b, w in zip(ours, reference, init):
        assert np.abs(a - w).max() > 1e-3             # the variables moved
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert "ResourceApplyAdam" in our_ops and "ResourceApplyAdam" not in reference_ops
    assert "L2Loss" in our_ops
