"""Students built from a teacher: the same model class with a smaller encoder.

`student_from_teacher` rewrites the teacher's serialized config (every nested `BertConfig`)
and rebuilds it, so a `TextClassifier` teacher gives a `TextClassifier` student (same
labels, preprocessor and head), a `BertPretrainer` a `BertPretrainer`. With `layers`, the
student starts from those teacher blocks plus the teacher's embeddings, pooler and head
(DistilBERT's initialisation); with another width it starts from scratch.

Example:
    >>> student = student_from_teacher(teacher, layers=every_other_layer(6))   # doctest: +SKIP
    >>> [l.name for l in encoder_of(student).transformer_layers]               # doctest: +SKIP
    ['transformer_layer_0', 'transformer_layer_1', 'transformer_layer_2']
"""

from __future__ import annotations

import keras
import numpy as np

from kbert.configs import BertConfig
from kbert.models import BertEncoder

CONFIG_KEYS = ("num_hidden_layers", "hidden_size", "num_attention_heads", "intermediate_size")


def every_other_layer(num_layers: int) -> list:
    """Teacher blocks 0, 2, 4, …: DistilBERT's default subset (half the depth)."""
    return list(range(0, num_layers, 2))


def encoder_of(model) -> BertEncoder:
    """The (first) `BertEncoder` inside a model."""
    if isinstance(model, BertEncoder):
        return model
    for layer in model._flatten_layers(include_self=False):
        if isinstance(layer, BertEncoder):
            return layer
    raise TypeError(f"{type(model).__name__} holds no BertEncoder")


def _rewrite_configs(node, changes: dict, drop_build_shapes: bool, vocabulary=None):
    """Every nested BertConfig dict updated with `changes` (and every stored `vocabulary`
    list replaced by `vocabulary`); with `drop_build_shapes`, the recorded build shapes go
    too (they hold the teacher's width)."""
    if isinstance(node, dict):
        if all(k in node for k in CONFIG_KEYS) and "vocab_size" in node:
            return BertConfig.from_dict({**node, **changes}).to_dict()
        return {k: (list(vocabulary) if k == "vocabulary" and vocabulary is not None
                    and isinstance(v, list) else
                    _rewrite_configs(v, changes, drop_build_shapes, vocabulary))
                for k, v in node.items() if not (drop_build_shapes and k == "build_config")}
    if isinstance(node, list):
        return [_rewrite_configs(v, changes, drop_build_shapes, vocabulary) for v in node]
    return node


def _copy_weights(source_layer, target_layer) -> None:
    target_layer.set_weights(source_layer.get_weights())


def student_from_teacher(teacher, layers=None, num_layers: int | None = None,
                         hidden_size: int | None = None, num_attention_heads: int | None = None,
                         intermediate_size: int | None = None, keep_token_ids=None,
                         vocabulary=None):
    """A student of the teacher's class: `layers` (teacher block indexes) or `num_layers`
    (default: every other layer); a different `hidden_size` means training from scratch.
    `keep_token_ids` (with the matching `vocabulary` tokens) prunes the token embedding to
    those rows (see `kbert.distillation.vocabulary`)."""
    config = encoder_of(teacher).config
    if layers is not None:
        layers = [int(i) for i in layers]
        bad = [i for i in layers if not 0 <= i < config.num_hidden_layers]
        if bad or not layers:
            raise ValueError(f"student layers {layers} must be teacher block indexes in "
                             f"0..{config.num_hidden_layers - 1}")
        num_layers = len(layers)
    num_layers = num_layers or max(1, config.num_hidden_layers // 2)
    changes = {"num_hidden_layers": int(num_layers)}
    width_changed = hidden_size is not None and hidden_size != config.hidden_size
    if width_changed:
        heads = num_attention_heads or max(1, hidden_size // 64)
        changes.update(hidden_size=int(hidden_size), num_attention_heads=int(heads),
                       intermediate_size=int(intermediate_size or 4 * hidden_size))
    elif intermediate_size is not None or num_attention_heads is not None:
        raise ValueError("change the student's heads or feed-forward width only together with "
                         "its hidden_size (a from-scratch student)")
    if keep_token_ids is not None:
        changes["vocab_size"] = len(keep_token_ids)
    spec = _rewrite_configs(keras.saving.serialize_keras_object(teacher), changes,
                            drop_build_shapes=width_changed or keep_token_ids is not None,
                            vocabulary=vocabulary)
    import kbert.tasks  # noqa: F401  (registers task classes)
    student = keras.saving.deserialize_keras_object(spec)
    if hasattr(student, "example_inputs"):
        student(student.example_inputs())
    if width_changed:
        return student
    if layers is None:
        layers = (every_other_layer(config.num_hidden_layers)[:num_layers]
                  if num_layers <= (config.num_hidden_layers + 1) // 2
                  else list(range(num_layers)))
    t_enc, s_enc = encoder_of(teacher), encoder_of(student)
    weights = t_enc.embeddings.get_weights()
    if keep_token_ids is not None:  # the token table is the first weight
        assert weights[0].shape[0] == t_enc.config.vocab_size, weights[0].shape
        weights[0] = weights[0][np.asarray(keep_token_ids)]
    s_enc.embeddings.set_weights(weights)
    for name in ("embedding_projection", "pooler"):   # ALBERT's E→H; no pooler: DistilBERT
        if getattr(t_enc, name, None) is not None:
            _copy_weights(getattr(t_enc, name), getattr(s_enc, name))
    for target, index in zip(s_enc.transformer_layers, layers):
        _copy_weights(t_enc.transformer_layers[index], target)
    # Everything outside the encoder (task heads) copies across when shapes match.
    encoder_ids = {id(v) for v in s_enc.weights}
    t_rest = [v for v in teacher.weights if id(v) not in {id(w) for w in t_enc.weights}]
    s_rest = [v for v in student.weights if id(v) not in encoder_ids]
    for source, target in zip(t_rest, s_rest):
        if tuple(source.shape) == tuple(target.shape):
            target.assign(source)
    return student


def with_sequence_output(model):
    """A model on the same inputs returning `{"logits", "sequence_output"}` (the
    encoder's last hidden states), sharing `model`'s weights."""
    encoder = encoder_of(model)
    outputs = model.output
    logits = outputs["logits"] if isinstance(outputs, dict) else outputs
    # The encoder's call inside `model`'s graph is one of its inbound nodes (another is
    # its own construction); take the one reachable from `model`'s inputs.
    for node in reversed(encoder._inbound_nodes):
        states = node.output_tensors
        states = states[0] if isinstance(states, (list, tuple)) and len(states) == 1 else states
        sequence = (states["sequence_output"] if isinstance(states, dict)
                    else node.outputs[0] if hasattr(node, "outputs") else None)
        if isinstance(states, (list, tuple)):  # flattened dict outputs, sorted keys
            keys = sorted(encoder.output)
            sequence = states[keys.index("sequence_output")]
        try:
            return keras.Model(model.input, {"logits": logits, "sequence_output": sequence})
        except ValueError:
            continue
    raise TypeError(f"cannot reach the encoder's hidden states inside {type(model).__name__}")
