"""`loss.png`: training and held-out loss and accuracy curves, and the learning rate.

Example:
    >>> from kbert.training.metrics_logging import MetricsHistory
    >>> history = MetricsHistory()
    >>> history.append("train", 1, {"loss": 9.0, "mlm_loss": 8.3, "nsp_loss": 0.7})
    >>> plot_history(history, "/tmp/kbert_doc_loss.png")
"""

from __future__ import annotations

from kbert import fileio

# The sentence objective's metrics are named after it (nsp_*, sop_*; none for RoBERTa).
LOSSES = ("loss", "mlm_loss", "nsp_loss", "sop_loss")
ACCURACIES = ("mlm_accuracy", "nsp_accuracy", "sop_accuracy")


def plot_history(history, path: str, title: str = "pre-training") -> None:
    """Draw `history` (a `MetricsHistory`) into the PNG `path`, written atomically."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    panels = ((axes[0], LOSSES, "loss"), (axes[1], ACCURACIES, "accuracy"),
              (axes[2], ("learning_rate",), "learning rate"))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for axis, metrics, label in panels:
        for index, metric in enumerate(metrics):   # one colour per metric, style per split
            for split, style in (("train", "-"), ("eval", "o--")):
                steps, values = history.series(split, metric)
                if steps:
                    axis.plot(steps, values, style, color=colors[index % len(colors)],
                              label=f"{split} {metric}", markersize=4)
        axis.set_xlabel("step")
        axis.set_ylabel(label)
        axis.grid(alpha=0.3)
        if axis.get_legend_handles_labels()[0]:
            axis.legend(fontsize=8)
    figure.suptitle(title)
    figure.tight_layout()
    with fileio.atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=100)
    plt.close(figure)
