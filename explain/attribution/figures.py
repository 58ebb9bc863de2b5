"""Figures of attribution results (object API only; see ``explain.plotting``)."""

from __future__ import annotations

import textwrap

import numpy as np
from matplotlib.ticker import MaxNLocator

from ..plotting import (
    DIVERGING,
    NotebookFigure,
    axes_or_new,
    diverging_norm,
    new_figure,
    style,
    text_colour,
)
from .methods import method_title

__all__ = ["CLIP_PERCENTILE", "importance_figure", "plot_bar", "plot_deletion", "plot_global",
           "plot_image", "plot_layer", "plot_text", "plot_waterfall", "written_words"]

_POS = "#b2182b"
_NEG = "#2166ac"


def _quantity(result) -> str:
    return {"probability": "probability", "logit": "logit",
            "log_probability": "log-probability"}[result.output]


def _short(label: str, width: int = 28) -> str:
    return label if len(label) <= width else label[:width - 1] + "…"


def _method(result) -> str:
    return method_title(result.method)


_TOKEN_TASKS = ("masked-lm", "causal-lm", "seq2seq-lm")  # their labels are tokens


def _label(result, text: str) -> str:
    """A class name as it is, a token of a language model quoted (``'.'`` reads as a token)."""
    return repr(text) if result.task in _TOKEN_TASKS else text


def written_words(result, k: int) -> list[tuple[int, str, float]]:
    """The words of text explanation ``k`` as the user wrote them: ``(segment, word, score)``.

    The tokenizer's words (subword pieces already joined, ``explain.text``) that touch, with no
    character between them, are one written word: ``don't`` (``don``, ``'``, ``t``),
    ``well-made`` and ``film,`` are one word each, scored by the sum of their parts (as token
    scores are summed into words). ``segment`` is 1 for the second text of a pair, else 0.
    """
    info = result._run.prepared.items[k].text
    _, scores = result.units(k)
    segments: dict[int, int] = {}
    for t, w in enumerate(info["word_index"]):
        if w >= 0:
            segments.setdefault(w, max(0, info["segment"][t]))
    spans: list[list] = []  # [segment, start, end, score]
    for w, (start, end) in enumerate(info["word_spans"]):
        segment = segments.get(w, 0)
        if spans and spans[-1][0] == segment and spans[-1][2] == start:
            spans[-1][2] = end
            spans[-1][3] += float(scores[w])
        else:
            spans.append([segment, start, end, float(scores[w])])
    texts = (info["text"], info.get("text_pair") or "")
    return [(segment, texts[segment][start:end], score) for segment, start, end, score in spans]


# The word figure's layout, in points: font size, box padding (in font sizes), the gap between
# two boxes, the distance between lines of words, a header line and the space after a block.
_FONT, _PAD, _GAP, _LINE, _HEAD, _BLOCK = 10.0, 0.2, 4.0, 21.0, 16.0, 8.0


def plot_text(result, *, ax=None, input=0, max_inputs=8):
    """The explained texts, word by word as written, each word on a cell coloured by its score
    (diverging scale centred at zero, one colour bar for all), in black or white, whichever
    contrasts more with the cell (WCAG, at least 4.58:1). Words are laid out in points, an
    equal gap between cells, and wrap at the width of the figure (of ``ax`` when given, as it is
    when called); one block per explanation, numbered from 1."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.transforms import ScaledTranslation

    indices = list(range(input, min(len(result), input + max_inputs)))
    blocks = [(k, written_words(result, k)) for k in indices]
    norm = diverging_norm([s for _, words in blocks for _, _, s in words] or [0.0])
    cmap = matplotlib.colormaps[DIVERGING]
    created = ax is None
    if created:
        fig = NotebookFigure(figsize=(8.0, 4.0))
        ax = fig.add_axes((0.02, 0.0, 0.96, 1.0))
    fig = ax.figure
    if not hasattr(fig.canvas, "get_renderer"):
        FigureCanvasAgg(fig)
    renderer = fig.canvas.get_renderer()
    points = 72.0 / fig.dpi
    with style():
        ax.set_axis_off()
        room = ax.get_window_extent(renderer).width * points
        pad = _PAD * _FONT
        placed = []  # (artist, x, y): points right of and below the axes' top-left corner
        y = _HEAD / 2
        for k, words in blocks:
            item = result._run.prepared.items[k]
            head = (f"{k + 1}. predicted {_label(result, result._predicted_label(k))} "
                    f"({_quantity(result)} {result._run.predicted_score[k]:.2f}), explaining "
                    f"{_label(result, result._target_label(k))}"
                    f"{' (truncated)' if item.truncated else ''}")
            placed.append((ax.text(0, 0, head, fontsize=8, color="0.3", va="center"), 0.0, y))
            y += (_HEAD + _LINE) / 2
            x, segment = 0.0, 0
            for word_segment, word, value in words:
                background = cmap(norm(value))
                text = ax.text(0, 0, word, fontsize=_FONT, va="center", ha="left",
                               color=text_colour(background),
                               bbox={"facecolor": background, "edgecolor": "none",
                                     "boxstyle": f"square,pad={_PAD}"})
                width = text.get_window_extent(renderer).width * points + 2 * pad
                if x > 0 and (x + width > room or word_segment != segment):
                    x, y = 0.0, y + _LINE
                segment = word_segment
                placed.append((text, x + pad, y))
                x += width + _GAP
            y += _LINE / 2 + _HEAD / 2 + _BLOCK
        height = y - _HEAD / 2 - _BLOCK  # down to the bottom of the last line
        title = f"Word attributions ({_method(result)})"
        label = (f"attribution to the {_quantity(result)} of the explained "
                 f"{'token' if result.task in _TOKEN_TASKS else 'label'}")
        if created:  # the figure is sized to its words: the axes hold them, title and bar around
            top, bottom = 0.45, 0.62  # inches: the title above, the colour bar below
            total = top + height / 72.0 + bottom
            fig.set_size_inches(8.0, total)
            ax.set_position((0.02, bottom / total, 0.96, height / 72.0 / total))
            bar_axes = fig.add_axes((0.15, 0.36 / total, 0.7, 0.12 / total))
            fig.suptitle(title, y=1 - 0.12 / total, va="top")
        mappable = matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap)
        if created:
            bar = fig.colorbar(mappable, cax=bar_axes, orientation="horizontal")
        else:
            bar = fig.colorbar(mappable, ax=ax, orientation="horizontal", fraction=0.08,
                               pad=0.02, aspect=50, shrink=0.8)
            ax.set_title(title)
        bar.set_label(label)
        for artist, x, y in placed:
            artist.set_position((0.0, 1.0))
            artist.set_transform(ax.transAxes + ScaledTranslation(x / 72.0, -y / 72.0,
                                                                  fig.dpi_scale_trans))
    return fig


def _units(result, k: int) -> tuple[list[str], np.ndarray]:
    """Labels and scores of explanation ``k``: written words for text (``written_words``), else
    ``result.units``."""
    if result.kind != "text":
        return result.units(k)
    words = written_words(result, k)
    return [w for _, w, _ in words], np.array([s for _, _, s in words], dtype=float)


def plot_bar(result, *, ax=None, input=0, top_k=10):
    labels, scores = _units(result, input)
    order = np.argsort(-np.abs(scores), kind="stable")[:top_k][::-1]
    fig, ax = axes_or_new(ax, 6.0, 1.0 + 0.3 * len(order))
    with style():
        ax.barh(range(len(order)), scores[order],
                color=[_POS if scores[j] > 0 else _NEG for j in order])
        ax.set_yticks(range(len(order)), [_short(labels[j]) for j in order])
        ax.axvline(0, color="0.2", linewidth=0.8)
        ax.set_xlabel(f"attribution to the {_quantity(result)} of "
                      f"{_label(result, result._target_label(input))}")
        ax.set_title(_wrap(f"Explanation {input + 1}: top {len(order)} units by |score| "
                           f"({_method(result)})"))
    return fig


def _wrap(text: str, width: int = 70) -> str:
    return "\n".join(textwrap.wrap(text, width))


def plot_waterfall(result, *, ax=None, input=0, top_k=10):
    """From f(baseline) (= f(x) - sum of scores, exact up to the completeness error) to f(x):
    the top units by |score| as steps, the rest summed in one step."""
    labels, scores = _units(result, input)
    f_x = result._run.f_x[input]
    start = f_x - float(np.sum(scores))
    order = list(np.argsort(-np.abs(scores), kind="stable")[:top_k])
    steps = [(_short(labels[j]), float(scores[j])) for j in order]
    if len(order) < len(scores):
        rest = float(np.sum(np.delete(scores, order)))
        steps.append((f"{len(scores) - len(order)} others", rest))
    fig, ax = axes_or_new(ax, 6.5, 1.4 + 0.32 * len(steps))
    largest = max((abs(v) for _, v in steps), default=0.0)
    # one number of decimals for every step: three, or more when every step is below 0.01
    decimals = 3 if largest == 0 or largest >= 0.01 else 1 - int(np.floor(np.log10(largest))) + 1
    with style():
        level = start
        levels = [start]
        n = len(steps)
        for j, (_, value) in enumerate(steps):
            y = n - 1 - j
            ax.barh(y, value, left=level, color=_POS if value > 0 else _NEG, height=0.7)
            # on a white box, so the f(x) and f(baseline) lines never run through a number
            ax.text(level + value, y, f" {value:+.{decimals}f} ", va="center", fontsize=7,
                    ha="left" if value >= 0 else "right", zorder=3,
                    bbox={"facecolor": "white", "edgecolor": "none", "pad": 0.5})
            level += value
            levels.append(level)
        ax.axvline(start, color="0.45", linewidth=0.9, linestyle=":",
                   label=f"f(baseline) = {start:.3g}")
        ax.axvline(f_x, color="0.15", linewidth=0.9, label=f"f(x) = {f_x:.3g}")
        ax.set_yticks(range(n - 1, -1, -1), [name for name, _ in steps])
        low, high = min(levels), max(levels)
        pad = 0.15 * (high - low) if high > low else max(abs(high), 1e-9) * 0.1
        ax.set_xlim(low - pad, high + pad)
        ax.set_xlabel(f"{_quantity(result)} of {_label(result, result._target_label(input))}")
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncols=2, frameon=False)
        ax.set_title(_wrap(f"Explanation {input + 1}: contributions from f(baseline) to f(x) "
                           f"({_method(result)})"))
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
    head = _wrap(f"{k + 1}. predicted {result._predicted_label(k)}", 34)
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
        fig.suptitle(_wrap(f"{_method(result)} attributions to the {_quantity(result)} "
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
    unit = "words" if result.kind == "text" else "features"
    return importance_figure(frame, ax=ax, top_k=top_k,
                             title=importance_title(top_k, unit, _method(result), min_count))


def importance_title(top_k: int, unit: str, method: str, min_count: int) -> str:
    """The title of ``importance_figure``: what ranks the rows and what the bars are."""
    seen = f"; {unit} seen at least {min_count} times" if min_count > 1 else ""
    return (f"Global importance: the {top_k} {unit} with the largest mean |score| per predicted "
            f"class\nbars: signed mean score with its 95% Student-t interval ({method}{seen})")


def importance_figure(frame, *, title: str, ax=None, top_k: int = 10):
    """Bars of ``mean_score`` with their intervals (``ci_low``/``ci_high``; none where NaN), one
    panel per predicted label (the top ``top_k`` rows of each, as ``frame`` orders them: the
    columns of ``AttributionResult.global_importance``, ranked by ``mean_abs_score``),
    labelled with the counts; ``mean_abs_score``, when ``frame`` has it, as a grey mark on
    each row, so a row ranked high with a signed mean near zero (scores of both signs) shows
    why it is there."""
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
            if "mean_abs_score" in part:
                a.scatter(part["mean_abs_score"].to_numpy(dtype=float), ys, marker="D", s=14,
                          facecolor="white", edgecolor="0.35", linewidth=0.9, zorder=3,
                          label="mean |score| (ranks the rows)")
            a.set_yticks(ys, [f"{_short(str(w), 20)} (n={c})" for w, c in
                              zip(part["label"], part["count"], strict=True)])
            a.axvline(0, color="0.2", linewidth=0.8)
            a.set_title(f"predicted {label}")
            a.set_xlabel("signed mean score (95% Student-t CI)")
        if "mean_abs_score" in frame and len(frame):
            handles, names = axes[0].get_legend_handles_labels()
            if ax is None:
                fig.legend(handles, names, loc="outside lower center", frameon=False)
            else:
                ax.legend(handles, names, loc="best", frameon=False)
        width = max(50, int(13 * fig.get_figwidth()))  # characters that fit on one line
        fig.suptitle("\n".join(_wrap(line, width) for line in title.split("\n")), fontsize=10)
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
                           f"({_method(result)})"))
    return fig


def plot_layer(result, *, ax=None, top_k=10):
    """The ``top_k`` neurons of a ``LayerAttributionResult`` ranked by the absolute value of
    their mean score over its inputs, bars the signed mean, with the standard deviation over
    inputs."""
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
        spread = " (± standard deviation)" if len(result) > 1 else ""
        ax.set_xlabel(f"mean signed score over {len(result)} input"
                      f"{'s' if len(result) != 1 else ''}{spread}")
        ax.set_title(_wrap(f"Layer {result.layer}: top {len(order)} units by |mean score|"))
    return fig
