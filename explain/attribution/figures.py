"""Figures of attribution results (object API only; see ``explain.plotting``)."""

from __future__ import annotations

import textwrap

import numpy as np
from matplotlib.ticker import MaxNLocator

from ..plotting import DIVERGING, axes_or_new, diverging_norm, new_figure, style

__all__ = ["CLIP_PERCENTILE", "plot_bar", "plot_deletion", "plot_global", "plot_image", "plot_layer", "plot_text",
           "plot_waterfall"]

_POS = "#b2182b"
_NEG = "#2166ac"


def _quantity(result) -> str:
    return {"probability": "probability", "logit": "logit",
            "log_probability": "log-probability"}[result.output]


def _short(label: str, width: int = 28) -> str:
    return label if len(label) <= width else label[:width - 1] + "…"


def plot_text(result, *, ax=None, input=0, max_inputs=8):
    """Words coloured by score, one block per explanation, one shared colour bar."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    indices = list(range(input, min(len(result), input + max_inputs)))
    units = [result.units(k) for k in indices]
    norm = diverging_norm(np.concatenate([s for _, s in units]) if units else [0.0])
    cmap = matplotlib.colormaps[DIVERGING]
    created = ax is None
    fig, ax = axes_or_new(ax, 8.0, 4.0)
    if not hasattr(fig.canvas, "get_renderer"):
        FigureCanvasAgg(fig)
    with style():
        ax.set_axis_off()
        ax.set_xlim(0, 1)
        renderer = fig.canvas.get_renderer()
        ax_width = ax.get_window_extent(renderer).width
        gap = 7.0 / ax_width
        line = 0.0  # y in line units, downward
        for k, (labels, values) in zip(indices, units, strict=True):
            head = (f"#{k}  predicted {result._predicted_label(k)} "
                    f"({result._run.predicted_score[k]:.2f}), explaining "
                    f"{result._target_label(k)}")
            ax.text(0, line, head, fontsize=8, color="0.3", va="center")
            line -= 1.0
            x = 0.0
            for label, value in zip(labels, values, strict=True):
                text = ax.text(x, line, label, fontsize=10, va="center",
                               bbox={"facecolor": cmap(norm(value)), "edgecolor": "none",
                                     "boxstyle": "round,pad=0.15"})
                width = text.get_window_extent(renderer).width / ax_width
                if x > 0 and x + width > 1.0:
                    line -= 1.0
                    x = 0.0
                    text.set_position((x, line))
                x += width + gap
            line -= 1.4
        ax.set_ylim(line + 0.6, 0.6)
        if created:
            fig.set_size_inches(8.0, 1.3 + 0.27 * (0.6 - line))
        mappable = matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap)
        bar = fig.colorbar(mappable, ax=ax, orientation="horizontal", fraction=0.08,
                           pad=0.02, aspect=50, shrink=0.8)
        bar.set_label(f"attribution to the {_quantity(result)} of the explained label "
                      f"({result.method})")
        ax.set_title(f"Word attributions ({result.method})")
    return fig


def plot_bar(result, *, ax=None, input=0, top_k=10):
    labels, scores = result.units(input)
    order = np.argsort(-np.abs(scores), kind="stable")[:top_k][::-1]
    fig, ax = axes_or_new(ax, 6.0, 1.0 + 0.3 * len(order))
    with style():
        ax.barh(range(len(order)), scores[order],
                color=[_POS if scores[j] > 0 else _NEG for j in order])
        ax.set_yticks(range(len(order)), [_short(labels[j]) for j in order])
        ax.axvline(0, color="0.2", linewidth=0.8)
        ax.set_xlabel(f"attribution to the {_quantity(result)} of "
                      f"{result._target_label(input)}")
        ax.set_title(_wrap(f"Top {len(order)} by |score|, explanation #{input} "
                           f"({result.method})"))
    return fig


def _wrap(text: str, width: int = 70) -> str:
    return "\n".join(textwrap.wrap(text, width))


def plot_waterfall(result, *, ax=None, input=0, top_k=10):
    """From f(baseline) (= f(x) - sum of scores, exact up to the completeness error) to f(x):
    the top units by |score| as steps, the rest summed in one step."""
    labels, scores = result.units(input)
    f_x = result._run.f_x[input]
    start = f_x - float(np.sum(scores))
    order = list(np.argsort(-np.abs(scores), kind="stable")[:top_k])
    steps = [(_short(labels[j]), float(scores[j])) for j in order]
    if len(order) < len(scores):
        rest = float(np.sum(np.delete(scores, order)))
        steps.append((f"{len(scores) - len(order)} others", rest))
    fig, ax = axes_or_new(ax, 6.5, 1.4 + 0.32 * len(steps))
    with style():
        level = start
        levels = [start]
        n = len(steps)
        for j, (_, value) in enumerate(steps):
            y = n - 1 - j
            ax.barh(y, value, left=level, color=_POS if value > 0 else _NEG, height=0.7)
            ax.text(level + value, y, f" {value:+.3g} ", va="center", fontsize=7,
                    ha="left" if value >= 0 else "right")
            level += value
            levels.append(level)
        ax.axvline(start, color="0.45", linewidth=0.9, linestyle=":",
                   label=f"f(baseline) = {start:.3g}")
        ax.axvline(f_x, color="0.15", linewidth=0.9, label=f"f(x) = {f_x:.3g}")
        ax.set_yticks(range(n - 1, -1, -1), [name for name, _ in steps])
        low, high = min(levels), max(levels)
        pad = 0.15 * (high - low) if high > low else max(abs(high), 1e-9) * 0.1
        ax.set_xlim(low - pad, high + pad)
        ax.set_xlabel(f"{_quantity(result)} of {result._target_label(input)}")
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncols=2, frameon=False)
        ax.set_title(_wrap(f"Explanation #{input}: contributions from f(baseline) to f(x) "
                           f"({result.method})"))
    return fig


#: Display only (the data stay raw): the colour scale of a photo's map ends at this percentile of
#: its |values| (the few larger values saturate), and maps of images at least ``_SMOOTH_FROM``
#: pixels wide are smoothed with a Gaussian of ``side / 64`` pixels (3.5 at 224).
CLIP_PERCENTILE = 99.0
_SMOOTH_FROM = 56


def _smoothed(pixel: np.ndarray) -> np.ndarray:
    """``pixel`` blurred by a separable Gaussian of sigma ``side / 64`` (edges reflected)."""
    side = max(pixel.shape)
    if side < _SMOOTH_FROM:
        return pixel
    sigma = side / 64.0
    radius = int(np.ceil(3 * sigma))
    kernel = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    kernel /= kernel.sum()
    out = np.pad(pixel, radius, mode="reflect")
    out = np.apply_along_axis(np.convolve, 0, out, kernel, mode="valid")
    return np.apply_along_axis(np.convolve, 1, out, kernel, mode="valid")


def _display(pixel: np.ndarray) -> tuple[np.ndarray, float, bool]:
    """The map as drawn: ``(values, limit, clipped)``, the symmetric colour limit at
    ``CLIP_PERCENTILE`` of |values| for images of ``_SMOOTH_FROM`` pixels or more (else the
    maximum), and whether any value lies beyond it."""
    shown = _smoothed(np.asarray(pixel, dtype=float))
    magnitude = np.abs(shown[np.isfinite(shown)])
    if magnitude.size == 0:
        return shown, 1.0, False
    percentile = CLIP_PERCENTILE if max(shown.shape) >= _SMOOTH_FROM else 100.0
    limit = float(np.percentile(magnitude, percentile))
    limit = limit if limit > 0 else float(magnitude.max()) or 1.0
    return shown, limit, bool(magnitude.max() > limit)


def _grey(x: np.ndarray) -> np.ndarray:
    """Luminance (ITU-R BT.601) of a ``(3, H, W)`` image, or the mean of other channel counts,
    rescaled to [0, 1]."""
    grey = (np.tensordot([0.299, 0.587, 0.114], x, axes=1) if x.shape[0] == 3 else x.mean(0))
    low, high = float(grey.min()), float(grey.max())
    return (grey - low) / (high - low) if high > low else np.zeros_like(grey)


def _draw_map(a, result, k):
    """Input ``k``'s map into ``a``: over the light grey photo, opacity growing with |value| (an RGB
    photo), or alone with the image's half-intensity contour (a one-channel image). Returns
    the colour-mapped image and whether its scale is clipped."""
    import matplotlib

    run = result._run
    x = run.prepared.items[k].x.numpy()
    shown, limit, clipped = _display(run.pixel_scores[k])
    norm = diverging_norm(shown, vmax=limit)
    cmap = matplotlib.colormaps[DIVERGING]
    grey = _grey(x)
    if x.shape[0] == 3:
        # a light grey photo (values 0.5..1) under the map: the colours stay those of the bar
        a.imshow(grey, cmap="gray", vmin=-1.0, vmax=1.0, interpolation="bilinear")
        rgba = cmap(norm(shown))
        rgba[..., 3] = np.clip(np.abs(shown) / limit, 0, 1) ** 0.7
        a.imshow(rgba, interpolation="bilinear")
        image = matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap)
    else:
        image = a.imshow(shown, cmap=cmap, norm=norm)
        if float(grey.max()) > float(grey.min()):
            a.contour(grey, levels=[0.5], colors="0.1", linewidths=0.8)
    _bare(a)
    return image, clipped


def _bare(a) -> None:
    a.set_xticks([])
    a.set_yticks([])
    for spine in a.spines.values():
        spine.set_visible(False)


def _image_title(result, k: int) -> str:
    run = result._run
    head = _wrap(f"#{k} predicted {result._predicted_label(k)}", 34)
    tail = f"{_quantity(result)} {run.predicted_score[k]:.2f}"
    target = result._target_label(k)
    if target != result._predicted_label(k):
        tail += f", explaining {_short(target, 20)}"
    return f"{head}\n{tail}"


def plot_image(result, *, ax=None, input=0, max_inputs=8):
    """Each image (top) above its attribution map (bottom), one column per explanation.

    The map is the attribution summed over the image's channels (signed: red raises the
    explained output, blue lowers it), on a diverging scale centred at zero with its own colour
    bar per image. For display only (the data stay raw), a photo's map is smoothed with a
    Gaussian of ``side / 64`` pixels and its scale ends at the ``CLIP_PERCENTILE`` percentile
    of |values| (the bar's arrows say when larger values saturate). An RGB map is drawn over
    the photo in light grey, opacity growing with |value|, so the photo's colours never mix with the
    scale; a one-channel image keeps its pixels and shows its half-intensity contour.
    With ``ax``: the map of explanation ``input`` only, drawn into ``ax``.
    """
    run = result._run
    if ax is not None:
        with style():
            image, clipped = _draw_map(ax, result, input)
            ax.set_title(_image_title(result, input), fontsize=8)
            ax.figure.colorbar(image, ax=ax, orientation="horizontal", fraction=0.06,
                               pad=0.04, extend="both" if clipped else "neither")
        return ax.figure
    indices = list(range(input, min(len(result), input + max_inputs)))
    fig, axes = new_figure(2.5 * len(indices) + 0.3, 5.6, nrows=2, ncols=len(indices))
    axes = np.asarray(axes).reshape(2, len(indices))
    with style():
        for column, k in enumerate(indices):
            top, bottom = axes[0, column], axes[1, column]
            x = run.prepared.items[k].x.numpy()
            if x.shape[0] == 3:
                top.imshow(np.clip(np.transpose(x, (1, 2, 0)), 0, 1), interpolation="bilinear")
            else:
                top.imshow(x.mean(0), cmap="gray_r" if x.shape[1] < _SMOOTH_FROM else "gray")
            _bare(top)
            top.set_title(_image_title(result, k), fontsize=8)
            image, clipped = _draw_map(bottom, result, k)
            bar = fig.colorbar(image, ax=bottom, orientation="horizontal", fraction=0.06,
                               pad=0.03, extend="both" if clipped else "neither")
            bar.ax.xaxis.set_major_locator(MaxNLocator(3, symmetric=True))
            bar.ax.tick_params(labelsize=6)
        channels = run.prepared.items[indices[0]].x.shape[0] if indices else 1
        summed = ("summed over RGB" if channels == 3 else "per pixel")
        if run.layer_name is not None:
            summed = f"of layer {run.layer_name}, upsampled"
        fig.suptitle(_wrap(f"{result.method} attributions to the {_quantity(result)} "
                           f"({summed}; red raises it, blue lowers it; each map its own scale)",
                           max(40, int(14 * len(indices) + 10))), fontsize=9)
    return fig


def plot_global(result, *, ax=None, top_k=10, min_count=1):
    """``importance_figure`` of ``result.global_importance(min_count=)``: one panel per
    predicted label (into ``ax`` only when there is one label)."""
    frame = result.global_importance(min_count=min_count)
    labels = frame["predicted_label"].nunique()
    if ax is not None and labels > 1:
        raise ValueError(f"plot('global') draws one panel per predicted label ({labels} here) "
                         f"in a figure of its own; call it without ax")
    return importance_figure(frame, ax=ax, top_k=top_k, title=f"Global importance, top {top_k} "
                             f"by mean |score| ({result.method})")


def importance_figure(frame, *, title: str, ax=None, top_k: int = 10):
    """Bars of ``mean_score`` with their intervals (``ci_low``/``ci_high``; none where NaN), one
    panel per predicted label (the top ``top_k`` rows of each, as ``frame`` orders them: the
    columns of ``AttributionResult.global_importance``), labelled with the counts."""
    labels = list(dict.fromkeys(frame["predicted_label"])) or ["(none)"]
    if ax is not None:
        fig, axes = ax.figure, [ax]
        labels = labels[:1]
    else:
        fig, axes = new_figure(4.2 * max(1, len(labels)), 1.2 + 0.3 * top_k,
                               ncols=max(1, len(labels)))
        axes = np.atleast_1d(axes)
    with style():
        for a, label in zip(axes, labels, strict=False):
            part = frame[frame["predicted_label"] == label].head(top_k).iloc[::-1]
            ys = np.arange(len(part))
            means = part["mean_score"].to_numpy(dtype=float)  # float also when empty
            low, high = (part[c].to_numpy(dtype=float) for c in ("ci_low", "ci_high"))
            low, high = np.where(np.isnan(low), means, low), np.where(np.isnan(high), means, high)
            a.barh(ys, means, color=[_POS if m > 0 else _NEG for m in means])
            a.errorbar(means, ys, xerr=[means - low, high - means], fmt="none", ecolor="0.2",
                       elinewidth=0.8, capsize=2)
            a.set_yticks(ys, [f"{_short(str(w), 20)} (n={c})" for w, c in
                              zip(part["label"], part["count"], strict=True)])
            a.axvline(0, color="0.2", linewidth=0.8)
            a.set_title(f"predicted {label}")
            a.set_xlabel("mean attribution (95% Student-t CI)")
        fig.suptitle(title)
    return fig


def plot_deletion(result, *, ax=None):
    from .trust import CURVE_FRACTIONS

    trust = result._trust
    if trust is None:
        raise ValueError("this result has no faithfulness curves; call attribute(..., "
                         "faithfulness='aopc') (or 'eraser')")
    fig, ax = axes_or_new(ax, 5.5, 3.8)
    curves = {
        "deletion": np.mean(trust.deletion, 0),
        "deletion, random": np.mean(trust.random_deletion, 0),
        "insertion": np.mean(trust.insertion, 0),
        "insertion, random": np.mean(trust.random_insertion, 0),
    }
    styles = {"deletion": (_NEG, "-"), "deletion, random": (_NEG, ":"),
              "insertion": (_POS, "-"), "insertion, random": (_POS, ":")}
    with style():
        for name, values in curves.items():
            auc = float(np.trapezoid(values, CURVE_FRACTIONS))
            colour, line = styles[name]
            ax.plot(CURVE_FRACTIONS, values, line, color=colour, marker="o", markersize=3,
                    label=f"{name} (AUC {auc:.3f})")
        ax.set_xlabel("fraction of units removed (deletion) / inserted (insertion)")
        ax.set_ylabel(f"mean {_quantity(result)} of the explained label")
        ax.set_xlim(0, 1)
        ax.legend(loc="best", frameon=False)
        ax.set_title(_wrap(f"Deletion and insertion curves, {len(result)} explanations "
                           f"({result.method})"))
    return fig


def plot_layer(result, *, ax=None, top_k=10):
    """The ``top_k`` neurons of a ``LayerAttributionResult`` by mean |score| over its inputs,
    with the standard deviation over inputs."""
    labels = result.neuron_labels()
    matrix = result.scores()
    mean = matrix.mean(0)
    order = np.argsort(-np.abs(mean), kind="stable")[:top_k][::-1]
    fig, ax = axes_or_new(ax, 6.0, 1.0 + 0.3 * len(order))
    with style():
        ax.barh(range(len(order)), mean[order], color=[_POS if mean[j] > 0 else _NEG
                                                       for j in order])
        if len(result) > 1:
            spread = matrix.std(0)[order]
            ax.errorbar(mean[order], range(len(order)), xerr=spread, fmt="none", ecolor="0.2",
                        elinewidth=0.8, capsize=2)
        ax.set_yticks(range(len(order)), [labels[j] for j in order])
        ax.axvline(0, color="0.2", linewidth=0.8)
        ax.set_xlabel(f"mean attribution over {len(result)} inputs (± std)")
        ax.set_title(_wrap(f"Top {len(order)} units of layer {result.layer}"))
    return fig
