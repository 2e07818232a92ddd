"""PNG pictures of an inspection (matplotlib, no display needed).

Example:
    >>> plot_similarity_curve(table, "out/similarity_by_layer.png")   # doctest: +SKIP
    >>> plot_attention_grid(maps, "out/attention.png")                # doctest: +SKIP
"""

from __future__ import annotations

import textwrap

import numpy as np


# Fonts with Hangul / CJK glyphs, tried after DejaVu Sans (matplotlib falls back per glyph);
# Debian: fonts-nanum, fonts-noto-cjk.
CJK_FONTS = ("NanumGothic", "NanumBarunGothic", "Noto Sans CJK KR", "Noto Sans CJK JP",
             "Noto Sans CJK SC", "Noto Sans KR", "UnDotum", "Baekmuk Gulim")


def _pyplot():
    import matplotlib
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    from matplotlib import font_manager
    installed = {font.name for font in font_manager.fontManager.ttflist}
    plt.rcParams["font.family"] = ["DejaVu Sans"] + [f for f in CJK_FONTS if f in installed]
    return plt


def layer_label(layer) -> str:
    if layer == "input":
        return "input embedding"
    return "embedding layer" if layer == 0 else f"layer {layer}"


def sentence_label(sentence, width: int = 34) -> str:
    text = textwrap.shorten(sentence.text, width=width, placeholder="…")
    sense = f"[{sentence.sense}] " if sentence.sense else ""
    return f"{sentence.line}: {sense}{text}"


def plot_similarity_heatmap(table, layer, path: str, vmin: float | None = None) -> None:
    """The cosine matrix of `table` at `layer` as a heat map, values written in the cells."""
    plt = _pyplot()
    matrix = table.matrix(layer)
    n = len(matrix)
    labels = [sentence_label(s) for s in table.sentences]
    fig, ax = plt.subplots(figsize=(4.5 + 0.45 * n, 2.5 + 0.45 * n), dpi=110)
    low = float(matrix.min()) if vmin is None else vmin
    image = ax.imshow(matrix, cmap="viridis", vmin=min(low, 0.999), vmax=1.0)
    ax.set_xticks(range(n), [str(s.line) for s in table.sentences])
    ax.set_yticks(range(n), labels, fontsize=8)
    ax.set_xlabel("sentence (line)")
    for i in range(n):
        for j in range(n):
            ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", fontsize=7,
                    color="white" if matrix[i, j] < (low + 1) / 2 else "black")
    ax.set_title(f"cosine of '{table.word}' between sentences, {layer_label(layer)}",
                 fontsize=10)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)


def plot_similarity_curve(table, path: str) -> None:
    """Mean similarity per layer: same-sense and cross-sense pairs (all pairs without
    senses), the input embedding first."""
    plt = _pyplot()
    rows = table.summary()
    x = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    series = (("same", "same sense", "tab:green"), ("cross", "different sense", "tab:red")) \
        if table.senses else (("all", "all pairs", "tab:blue"),)
    for key, label, color in series:
        values = [np.nan if r.get(key) is None else r[key] for r in rows]
        ax.plot(x, values, marker="o", label=label, color=color)
    ax.set_xticks(x, ["input"] + [("emb" if r["layer"] == 0 else str(r["layer"]))
                                  for r in rows[1:]])
    ax.set_xlabel("layer (input = static token embedding, emb = embedding layer output)")
    ax.set_ylabel("mean cosine similarity")
    ax.set_title(f"'{table.word}' in {len(table.sentences)} sentences: how alike its "
                 f"vectors are, layer by layer", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)


def plot_attention_grid(maps, path: str) -> None:
    """Every head (columns) of every layer (rows) as a query x key heat map, the tokens on
    the axes of the first column and the last row."""
    plt = _pyplot()
    layers, heads, seq, _ = maps.weights.shape
    cell = max(1.1, 0.16 * seq)
    fig, axes = plt.subplots(layers, heads, figsize=(1.0 + cell * heads, 0.8 + cell * layers),
                             dpi=100, squeeze=False)
    font = max(3.0, min(7.0, 70.0 / seq))
    for layer in range(layers):
        for head in range(heads):
            ax = axes[layer, head]
            ax.imshow(maps.weights[layer, head], cmap="Blues", vmin=0.0, vmax=1.0)
            ax.set_xticks(range(seq), maps.pieces if layer == layers - 1 else [],
                          rotation=90, fontsize=font)
            ax.set_yticks(range(seq), maps.pieces if head == 0 else [], fontsize=font)
            ax.tick_params(length=0)
            if layer == 0:
                ax.set_title(f"head {head + 1}", fontsize=8)
            if head == 0:
                ax.set_ylabel(f"layer {layer + 1}", fontsize=8)
    fig.suptitle("attention: rows are the tokens that look (queries), columns the tokens "
                 "they look at (keys)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
