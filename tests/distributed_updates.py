"""Run by tests/test_distributed.py in a fresh process (it needs 2 logical CPU devices before
TensorFlow starts): one plain-SGD step of the pre-training loop under several layouts;
prints {layout: weight update} as JSON-able norms and the raw updates to an .npz file.

    python -m tests.distributed_updates OUT.npz
"""

import os
import sys
import tempfile

import numpy as np


def main(out_path):
    from kbert.training.distribution import configure_cpu_devices
    configure_cpu_devices(2)
    import keras
    import tensorflow as tf

    from kbert.configs import BertConfig
    from kbert.models import BertEncoder, BertPretrainer
    from kbert.training import objective
    from kbert.training.loop import LoopSettings, Phase, PretrainingLoop
    from kbert.training.optimizers import _CallerReducedGradientsMixin
    from tests.test_training_loop import BATCH, SEQ, VOCAB, synthetic_dataset_fn

    class ReducedSGD(_CallerReducedGradientsMixin, keras.optimizers.SGD):
        """Plain SGD (update = -lr * gradient): a wrong gradient scale shows in full."""
        gradients_reduced = True

    config = BertConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=64, hidden_dropout_prob=0.0,
                        attention_probs_dropout_prob=0.0, max_position_embeddings=SEQ)
    devices = [d.name for d in tf.config.list_logical_devices("CPU")]
    layouts = {
        "one_device": (tf.distribute.OneDeviceStrategy(devices[0]), 1, "float32"),
        "2_replicas_x_2_micro": (tf.distribute.MirroredStrategy(
            devices, cross_device_ops=tf.distribute.ReductionToOneDevice()), 2, "float32"),
        "2_replicas_x_2_micro_fp16": (tf.distribute.MirroredStrategy(
            devices, cross_device_ops=tf.distribute.ReductionToOneDevice()), 2,
            "mixed_float16"),
    }
    start, updates, counted = None, {}, []
    real_metrics = objective.metrics_from_terms

    def counting_metrics(terms):
        counted.append(float(terms["nsp_count"]))
        return real_metrics(terms)
    objective.metrics_from_terms = counting_metrics
    for name, (strategy, accumulation, policy) in layouts.items():
        keras.config.set_dtype_policy(policy)
        with strategy.scope():
            model = BertPretrainer(BertEncoder(config))
            model(model.example_inputs())
            if start is None:
                start = [w.copy() for w in model.get_weights()]
            model.set_weights(start)
            optimizer = ReducedSGD(learning_rate=1.0)
            if policy == "mixed_float16":
                optimizer = keras.optimizers.LossScaleOptimizer(optimizer, initial_scale=1024.0)
        settings = LoopSettings(tempfile.mkdtemp(), grad_accum_steps=accumulation,
                                log_every_steps=1, save_checkpoints_steps=100,
                                eval_steps=4, write_plot=False)
        loop = PretrainingLoop(strategy, model, optimizer, settings,
                               eval_dataset_fn=synthetic_dataset_fn(seed=99),
                               eval_batch_size=BATCH)
        loop.run([Phase("p", 1, BATCH, synthetic_dataset_fn())])
        # Sequences one evaluation reads: eval_steps global batches whatever the replicas.
        counted.clear()
        loop.evaluate()
        updates[f"eval_sequences_{name}"] = np.array(counted[-1])
        updates[name] = np.concatenate([(after - before).ravel() for before, after
                                        in zip(start, model.get_weights())])
    keras.config.set_dtype_policy("float32")
    np.savez(out_path, **updates)


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    main(sys.argv[1])
