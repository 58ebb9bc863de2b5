"""The figures of attention results: one head, the layer x head grid, a head-statistic heatmap,
the rollout / flow bars, and for images the rollout and every head's ``[CLS]`` attention drawn
over the image's patches.

Each function receives an already checked result and option values (``AttentionResult.plot``
checks them) and reads the result through its public API only; figures are made, never shown.
"""

from __future__ import annotations

import math

import numpy as np

from ..checks import one_of
from ..plotting import (
    DIVERGING,
    SEQUENTIAL,
    axes_or_new,
    diverging_norm,
    new_figure,
    style,
    text_colour,
)
from .graph import HEAD_STATISTICS

__all__ = ["IMAGE_HEAT", "bars_figure", "grid_figure", "head_figure", "head_grid_figure",
           "head_summary_figure", "heads_image_figure", "rollout_image_figure"]

def _tick_step(n: int, room: int = 60) -> int:
    return max(1, math.ceil(n / room))


def _short(label: str, limit: int = 18) -> str:
    label = label.replace("\n", " ")
    return label if len(label) <= limit else label[:limit - 1] + "…"


def _truncated(result, i: int) -> str:
    return " (truncated)" if result.truncated[i] else ""


def _kept(labels, specials, hide_special: bool) -> np.ndarray:
    keep = np.ones(len(labels), dtype=bool)
    if hide_special:
        keep = ~np.asarray(specials, dtype=bool)
        if not keep.any():
            keep = np.ones(len(labels), dtype=bool)
    return keep


def head_figure(result, *, ax, text_id: int, layer: int, head: int, level: str,
                attention: str, hide_special: bool):
    """One head of one layer of text ``text_id`` as a query x key heatmap."""
    i = text_id
    matrix = result.matrix(i, layer=layer, head=head, level=level, attention=attention)
    query_side, key_side = result.sides(attention)
    q_labels, k_labels = query_side.labels(i, level), key_side.labels(i, level)
    q_keep = _kept(q_labels, query_side.specials(i, level), hide_special)
    k_keep = _kept(k_labels, key_side.specials(i, level), hide_special)
    matrix = matrix[np.ix_(q_keep, k_keep)]
    q_labels = [_short(x) for x, k in zip(q_labels, q_keep, strict=True) if k]
    k_labels = [_short(x) for x, k in zip(k_labels, k_keep, strict=True) if k]
    n_q, n_k = matrix.shape
    width = min(16.0, max(4.5, 0.22 * n_k + 2.2))
    height = min(16.0, max(3.5, 0.22 * n_q + 1.6))
    with style():
        fig, ax = axes_or_new(ax, width, height)
        image = ax.imshow(matrix, cmap=SEQUENTIAL, vmin=0.0, vmax=max(float(matrix.max()), 1e-9),
                          aspect="auto")
        step_q, step_k = _tick_step(n_q), _tick_step(n_k)
        ax.set_yticks(range(0, n_q, step_q), q_labels[::step_q])
        ax.set_xticks(range(0, n_k, step_k), k_labels[::step_k], rotation=90)
        ax.set_xlabel(f"key ({level})")
        ax.set_ylabel(f"query ({level})")
        kind = "" if attention == "self" else f"{attention} attention, "
        hidden = ", special tokens hidden" if hide_special else ""
        ax.set_title(f"{result.model_name}: {kind}layer {layer}, head {head}, text {i + 1}"
                     f"{hidden}{_truncated(result, i)}")
        bar = fig.colorbar(image, ax=ax, shrink=0.8)
        bar.set_label("attention weight")
    return fig


def grid_figure(result, *, text_id: int, level: str, attention: str, hide_special: bool):
    """Layer x head thumbnails of every captured map of text ``text_id`` (its own figure)."""
    from matplotlib.colors import PowerNorm

    i = text_id
    n_l, n_h = len(result.layers), len(result.heads)
    query_side, key_side = result.sides(attention)
    q_keep = _kept(query_side.labels(i, level), query_side.specials(i, level), hide_special)
    k_keep = _kept(key_side.labels(i, level), key_side.specials(i, level), hide_special)
    size = 1.05
    fig, axes = new_figure(min(18.0, size * n_h + 1.4), min(20.0, size * n_l + 0.9),
                           nrows=n_l, ncols=n_h)
    axes = np.asarray(axes, dtype=object).reshape(n_l, n_h)
    norm = PowerNorm(gamma=0.5, vmin=0.0, vmax=1.0)
    with style():
        image = None
        for row, layer in enumerate(result.layers):
            for col, head in enumerate(result.heads):
                ax = axes[row][col]
                matrix = result.matrix(i, layer=layer, head=head, level=level,
                                       attention=attention)[np.ix_(q_keep, k_keep)]
                image = ax.imshow(matrix, cmap=SEQUENTIAL, norm=norm, aspect="auto")
                ax.set_xticks([])
                ax.set_yticks([])
                for spine in ax.spines.values():
                    spine.set_visible(True)
                    spine.set_linewidth(0.4)
                if row == 0:
                    ax.set_title(f"head {head}", fontsize=8)
                if col == 0:
                    ax.set_ylabel(f"layer {layer}", fontsize=8)
        kind = "" if attention == "self" else f"{attention} attention, "
        hidden = ", special tokens hidden" if hide_special else ""
        fig.suptitle(f"{result.model_name}: {kind}all heads, text {i + 1} "
                     f"({int(q_keep.sum())} x {int(k_keep.sum())} {level}s{hidden})"
                     f"{_truncated(result, i)}", fontsize=10)
        bar = fig.colorbar(image, ax=axes, shrink=0.6, aspect=30)
        bar.set_label("attention weight (square-root scale)")
    return fig


#: Colour-bar labels of the head heatmaps: the head statistics and the head importance.
_DESCRIPTIONS = {**HEAD_STATISTICS, "importance": "drop of the target score when the head is masked"}


def head_summary_figure(result, *, ax, statistic: str, attention: str):
    """Heatmap of one head statistic (or ``"importance"``) of an attention result."""
    one_of(statistic, [*HEAD_STATISTICS, "importance"], "statistic")
    frame = result.head_statistics(attention=attention)
    if statistic not in frame.columns:
        raise ValueError("statistic 'importance' needs attention(..., importance=True)")
    grid = frame.pivot(index="layer", columns="head", values=statistic).to_numpy(dtype=float)
    n_texts = len(result.texts)
    kind = "" if attention == "self" else f" ({attention} attention)"
    unit = "image" if getattr(result, "images", None) is not None else "text"
    title = (f"{result.model_name}: {statistic.replace('_', ' ')}{kind}, mean over "
             f"{n_texts} {unit}{'s' if n_texts != 1 else ''}"
             f"{' (some truncated)' if any(result.truncated) else ''}")
    return head_grid_figure(grid, ax=ax, layers=result.layers, heads=result.heads,
                            statistic=statistic, title=title)


def head_grid_figure(grid: np.ndarray, *, ax, layers, heads, statistic: str, title: str):
    """Layer x head heatmap of ``grid`` (``(len(layers), len(heads))``), values written in the
    cells when there are at most 200, each in black or white, whichever contrasts more with its
    cell; ``"importance"`` is drawn on a diverging scale centred at zero."""
    n_l, n_h = grid.shape
    with style():
        fig, ax = axes_or_new(ax, min(16.0, max(4.5, 0.55 * n_h + 2.2)),
                              min(14.0, max(3.0, 0.45 * n_l + 1.6)))
        if statistic == "importance":
            image = ax.imshow(grid, cmap=DIVERGING, norm=diverging_norm(grid), aspect="auto")
        else:
            image = ax.imshow(grid, cmap=SEQUENTIAL, aspect="auto")
        ax.set_xticks(range(n_h), [str(h) for h in heads])
        ax.set_yticks(range(n_l), [str(layer) for layer in layers])
        ax.set_xlabel("head")
        ax.set_ylabel("layer")
        if n_l * n_h <= 200:
            finite = grid[np.isfinite(grid)]
            scale = float(np.abs(finite).max()) if finite.size else 0.0
            for r in range(n_l):
                for c in range(n_h):
                    value = grid[r, c]
                    if not np.isfinite(value):
                        continue
                    text = f"{value:.2f}" if scale >= 0.1 else f"{value:.1e}"
                    ax.text(c, r, text, ha="center", va="center", fontsize=6.5,
                            color=text_colour(image.cmap(image.norm(value))))
        ax.set_title(title)
        bar = fig.colorbar(image, ax=ax, shrink=0.85)
        bar.set_label(_DESCRIPTIONS[statistic], fontsize=7)
    return fig


def bars_figure(result, kind: str, *, ax, text_id: int, level: str, query: int | None,
                hide_special: bool):
    """Rollout or flow (``kind``) of text ``text_id`` from token ``query`` as bars over units."""
    i = text_id
    values = result.rollout(i, query=query, level=level) if kind == "rollout" \
        else result.flow(i, query=query, level=level)
    side = result.sides("self")[0]
    labels = [_short(x, 24) for x in side.labels(i, level)]
    specials = side.specials(i, level)
    keep = _kept(labels, specials, hide_special)
    values = values[keep]
    labels = [x for x, k in zip(labels, keep, strict=True) if k]
    specials = [x for x, k in zip(specials, keep, strict=True) if k]
    q = result.query_index(i, query)
    q_label = side.tokens[i][q]
    q_word = side.unit_labels[i][side.unit_index[i][q]]
    q_text = f"{q_label!r}" + (f" of {q_word!r}" if q_word != q_label else "")
    n = len(values)
    with style():
        fig, ax = axes_or_new(ax, 6.0, min(18.0, max(2.5, 0.24 * n + 1.2)))
        colors = ["#b0b0b0" if s else "#2b6cb0" for s in specials]
        positions = np.arange(n)
        ax.barh(positions, values, color=colors, height=0.75)
        ax.set_yticks(positions, labels)
        ax.invert_yaxis()
        ax.set_xlim(0, max(float(values.max()) * 1.12, 1e-9))
        total = "special tokens hidden; all units sum to 1" if hide_special and not keep.all() \
            else "sums to 1"
        ax.set_xlabel(f"share of {kind} from query {q_label!r} ({total})")
        ax.grid(axis="x", linewidth=0.4, alpha=0.5)
        ax.set_axisbelow(True)
        name = "rollout" if kind == "rollout" else "flow"
        ax.set_title(f"{result.model_name}: attention {name}, text {i + 1}, from query "
                     f"{q_text} (token {q + 1} of {len(side.tokens[i])}){_truncated(result, i)}")
        if any(specials):
            from matplotlib.patches import Patch

            ax.legend(handles=[Patch(color="#2b6cb0", label=level),
                               Patch(color="#b0b0b0", label="special token")],
                      loc="best", frameon=True, framealpha=0.9)
    return fig


#: Colour map of attention drawn over an image: its colours, with opacity rising from 0.05 at
#: zero to 0.7 at the top of the scale, so the grey image shows through where attention is low.
IMAGE_HEAT = "YlOrRd"


def _heat_map():
    from matplotlib import colormaps
    from matplotlib.colors import ListedColormap

    colours = colormaps[IMAGE_HEAT](np.linspace(0.0, 1.0, 256))
    colours[:, 3] = np.linspace(0.05, 0.7, 256)
    return ListedColormap(colours, name=f"{IMAGE_HEAT}_alpha")


def _on_image(ax, result, i: int, values: np.ndarray, *, vmax: float, ticks: bool):
    """Image ``i`` in grey (channels averaged, min-max scaled, high values dark grey) under
    ``values`` (``patch_grid``), upsampled to the pixels in ``_heat_map()``; returns the heat."""
    image = np.asarray(result.images[i], dtype=np.float64).mean(axis=0)
    span = float(image.max() - image.min())
    grey = (image - image.min()) / span if span > 0 else np.zeros_like(image)
    height, width = grey.shape
    rows, cols = result.patch_grid
    extent = (-0.5, width - 0.5, height - 0.5, -0.5)
    ax.imshow(grey, cmap="gray_r", vmin=0.0, vmax=1.3, extent=extent)
    heat = ax.imshow(values, cmap=_heat_map(), vmin=0.0, vmax=max(vmax, 1e-9), extent=extent)
    for r in range(1, rows):
        ax.axhline(r * height / rows - 0.5, color="#9a9a9a", linewidth=0.4)
    for c in range(1, cols):
        ax.axvline(c * width / cols - 0.5, color="#9a9a9a", linewidth=0.4)
    if ticks:
        ax.set_xticks((np.arange(cols) + 0.5) * width / cols - 0.5, [str(c) for c in range(cols)])
        ax.set_yticks((np.arange(rows) + 0.5) * height / rows - 0.5, [str(r) for r in range(rows)])
        ax.set_xlabel("patch column")
        ax.set_ylabel("patch row")
    else:
        ax.set_xticks([])
        ax.set_yticks([])
    return heat


def _query_name(result, i: int, query: int | None) -> str:
    q = result.query_index(i, query)
    return result.tokens(i)[q]


def rollout_image_figure(result, *, ax, image_id: int, query: int | None):
    """Attention rollout of ``query`` (default ``[CLS]``) over the patches of image
    ``image_id``, renormalised over the patches, as a heat overlay on the image."""
    i = image_id
    values = result.patch_rollout(i, query=query)
    own = float(result.rollout(i, query=query, level="token")[0])
    name = _query_name(result, i, query)
    with style():
        fig, ax = axes_or_new(ax, 4.6, 4.0)
        heat = _on_image(ax, result, i, values, vmax=float(values.max()), ticks=True)
        ax.set_title(f"{result.model_name}: attention rollout of {name}, image {i + 1}\n"
                     f"patches sum to 1 ({name} keeps {own:.2f} of the rollout, left out)")
        bar = fig.colorbar(heat, ax=ax, shrink=0.85)
        bar.set_label(f"share of the {name} rollout")
    return fig


def heads_image_figure(result, *, image_id: int, query: int | None):
    """Attention of ``query`` (default ``[CLS]``) over the patches in every captured layer and
    head of image ``image_id``, each on the image, one shared colour scale (its own figure)."""
    i = image_id
    n_l, n_h = len(result.layers), len(result.heads)
    grids = {(layer, head): result.patch_attention(i, layer=layer, head=head, query=query)
             for layer in result.layers for head in result.heads}
    vmax = max(float(g.max()) for g in grids.values())
    name = _query_name(result, i, query)
    size = 1.6
    fig, axes = new_figure(min(18.0, size * n_h + 1.2), min(20.0, size * n_l + 0.8),
                           nrows=n_l, ncols=n_h)
    axes = np.asarray(axes, dtype=object).reshape(n_l, n_h)
    with style():
        heat = None
        for row, layer in enumerate(result.layers):
            for col, head in enumerate(result.heads):
                ax = axes[row][col]
                heat = _on_image(ax, result, i, grids[layer, head], vmax=vmax, ticks=False)
                for spine in ax.spines.values():  # a thin frame on all four sides
                    spine.set_visible(True)
                    spine.set_linewidth(0.4)
                if row == 0:
                    ax.set_title(f"head {head}", fontsize=8)
                if col == 0:
                    ax.set_ylabel(f"layer {layer}", fontsize=8)
        fig.suptitle(f"{result.model_name}: attention of {name} over the patches, image "
                     f"{i + 1}",
                     fontsize=10)
        bar = fig.colorbar(heat, ax=axes, shrink=0.7, aspect=30)
        bar.set_label(f"attention weight of {name} (not renormalised)")
    return fig
