"""Figures a paper could print: readable text on every coloured cell, words as they were
written and evenly spaced, titles and labels that say what is drawn, numbering from 1."""

from __future__ import annotations

import itertools

import matplotlib
import numpy as np
import pandas as pd
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg

from explain.attention import attention
from explain.attention.figures import head_grid_figure
from explain.attribution import attribute
from explain.attribution.figures import importance_figure, written_words
from explain.fairness import audit
from explain.plotting import DIVERGING, SEQUENTIAL, contrast_ratio, relative_luminance, text_colour

TEXTS = ["I don't like this well-made unbelievably slow film, sadly.",
         "A second review, long enough to wrap over more than one line of the figure: the "
         "cast is fine, the script is not, and the ending drags on and on until the lights "
         "come up."]


def _cells(fig):
    """Every drawn word of the word figure: ``(text, rendered text box, cell box)``."""
    canvas = fig.canvas if hasattr(fig.canvas, "get_renderer") else FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    out = []
    for ax in fig.axes:
        for text in ax.texts:
            patch = text.get_bbox_patch()
            if patch is not None:
                out.append((text, text.get_window_extent(renderer),
                            patch.get_window_extent(renderer)))
    return out


@pytest.fixture
def words_result(tiny_bert):
    return attribute(tiny_bert, TEXTS, method="integrated_gradients", n_steps=8,
                             faithfulness=False)


def test_wcag_numbers_and_the_better_of_black_and_white_on_every_colour():
    assert relative_luminance("white") == pytest.approx(1.0)
    assert relative_luminance("black") == pytest.approx(0.0)
    assert contrast_ratio("black", "white") == pytest.approx(21.0)
    assert contrast_ratio("#777777", "white") == pytest.approx(4.48, abs=0.01)  # WCAG's example
    for name in (DIVERGING, SEQUENTIAL):
        colours = matplotlib.colormaps[name](np.linspace(0, 1, 256))
        ratios = [contrast_ratio(text_colour(c), c) for c in colours]
        assert min(ratios) >= 4.5, name
        # both are needed: white on the dark ends, black on the light middle
        assert {text_colour(c) for c in colours} == {"black", "white"}, name


def test_every_word_contrasts_with_its_cell(words_result):
    cells = _cells(words_result.plot("text"))
    assert len(cells) == sum(len(written_words(words_result, k)) for k in range(2))
    ratios = [contrast_ratio(text.get_color(), text.get_bbox_patch().get_facecolor())
              for text, _, _ in cells]
    assert min(ratios) >= 4.5
    # the largest |score| gets the darkest cell of the scale, so white text is drawn somewhere
    assert "white" in {text.get_color() for text, _, _ in cells}


def test_words_are_drawn_as_written_and_keep_their_scores(words_result, tiny_bert):
    tokens = tiny_bert.encode_texts(TEXTS[:1]).tokens[0]
    assert "'" in tokens and "-" in tokens and any(t.startswith("##") for t in tokens)
    words = written_words(words_result, 0)
    assert [w for _, w, _ in words] == TEXTS[0].split()
    _, unit_scores = words_result.units(0)
    assert sum(s for _, _, s in words) == pytest.approx(float(unit_scores.sum()), abs=1e-12)
    drawn = [text.get_text() for text, _, _ in _cells(words_result.plot("text", max_inputs=1))]
    assert drawn == TEXTS[0].split()
    # the bar chart ranks the same written words
    labels = [t.get_text() for t in words_result.plot("bar", top_k=20).axes[0].get_yticklabels()]
    assert sorted(labels) == sorted(TEXTS[0].split())


def test_words_are_evenly_spaced_and_never_overlap(words_result):
    fig = words_result.plot("text")
    cells = _cells(fig)
    lines: dict[float, list] = {}
    for _, _, box in cells:
        lines.setdefault(round(box.y0 + box.height / 2), []).append(box)
    assert len(lines) >= 3  # the second text wraps
    gaps = []
    for boxes in lines.values():
        boxes.sort(key=lambda b: b.x0)
        gaps += [b.x0 - a.x1 for a, b in itertools.pairwise(boxes)]
    assert min(gaps) > 0
    assert max(gaps) - min(gaps) < 1.5  # pixels: the same gap everywhere
    right = max(box.x1 for _, _, box in cells)
    assert right <= fig.bbox.width
    boxes = [box for _, _, box in cells]
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])


def test_labels_number_from_one(words_result, tiny_bert):
    heads = [t.get_text() for t in words_result.plot("text").axes[0].texts
             if t.get_bbox_patch() is None]
    assert heads[0].startswith("1. predicted") and heads[1].startswith("2. predicted")
    assert words_result.plot("waterfall").axes[0].get_title().startswith("Explanation 1:")
    assert words_result.plot("bar", input=1).axes[0].get_title().startswith("Explanation 2:")
    maps = attention(tiny_bert, TEXTS)
    assert "text 1" in maps.plot("head", text_id=0, layer=0, head=0).axes[0].get_title()
    assert "text 2" in maps.plot("rollout", text_id=1).axes[0].get_title()


def test_global_importance_title_and_marks_say_what_is_drawn():
    frame = pd.DataFrame({"predicted_label": ["a"] * 3, "label": ["both", "up", "down"],
                          "count": [20, 20, 20], "mean_score": [0.01, 0.2, -0.1],
                          "mean_abs_score": [0.5, 0.2, 0.1], "ci_low": [-0.1, 0.1, -0.2],
                          "ci_high": [0.12, 0.3, 0.0]})
    fig = importance_figure(frame, title="Global importance: the 3 features with the largest "
                                         "mean |score|\nbars: signed mean score")
    ax = fig.axes[0]
    # rows in the frame's order (by mean |score|, top first), bars the signed means
    assert [t.get_text() for t in ax.get_yticklabels()][::-1] == \
        ["both (n=20)", "up (n=20)", "down (n=20)"]
    assert [bar.get_width() for bar in ax.patches][::-1] == pytest.approx([0.01, 0.2, -0.1])
    marks = ax.collections[-1].get_offsets()[:, 0]
    assert list(marks[::-1]) == pytest.approx([0.5, 0.2, 0.1])
    assert ax.get_xlabel().startswith("signed mean score")
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == ["mean |score| (ranks the rows)"]


def test_result_global_title_matches_its_bars(words_result):
    fig = words_result.plot("global")
    title = fig.get_suptitle().replace("\n", " ")
    assert "with the largest mean |score|" in title and "bars: signed mean score" in title
    table = words_result.global_importance()
    top = table[table["predicted_label"] == table["predicted_label"].iloc[0]].head(10)
    widths = [bar.get_width() for bar in fig.axes[0].patches][::-1]
    assert widths == pytest.approx(top["mean_score"].to_list())


def test_head_heatmap_numbers_contrast_and_importance_is_centred_on_zero():
    rng = np.random.default_rng(0)
    grid = rng.uniform(0, 3, size=(4, 6))
    for statistic, values in (("entropy", grid), ("importance", grid - 0.5)):
        fig = head_grid_figure(values, ax=None, layers=range(4), heads=range(6),
                               statistic=statistic, title="t")
        ax = fig.axes[0]
        image = ax.images[0]
        texts = ax.texts
        assert len(texts) == values.size
        for text in texts:
            column, row = (round(v) for v in text.get_position())
            cell = image.cmap(image.norm(values[row, column]))
            assert contrast_ratio(text.get_color(), cell) >= 4.5
        if statistic == "importance":
            assert image.norm(0.0) == pytest.approx(0.5)
            assert image.norm.vmin == pytest.approx(-image.norm.vmax)


def test_audit_figures_say_what_they_draw():
    rng = np.random.default_rng(1)
    n = 600
    frame = pd.DataFrame({"group": rng.choice(["a", "b", "c"], n, p=[0.5, 0.45, 0.05])})
    frame["y"] = (rng.random(n) < 0.4).astype(int)
    frame["pred"] = (rng.random(n) < 0.5).astype(int)
    frame.loc[frame["group"] == "c", "pred"] = 0  # no predicted positives: precision undefined
    result = audit(data=frame, sensitive_features="group", label="y", prediction="pred",
                   n_permutations=199, min_group_size=10)
    metrics = result.plot("metrics").axes[0]
    assert "whiskers" in metrics.get_title()
    disparities = result.plot("disparities").axes[0]
    assert "plot(" not in disparities.get_xlabel()
    contrasts = result.plot("contrasts").axes[0]
    undefined = result.contrasts[~np.isfinite(result.contrasts["difference"])]
    assert len(undefined) >= 1
    # an undefined contrast is written "n/a", never drawn as a dot at zero
    assert sum(t.get_text().strip() == "n/a" for t in contrasts.texts) == len(undefined)
    dots = [line for line in contrasts.lines if line.get_marker() == "o"]
    assert len(dots) == int(np.isfinite(result.contrasts["difference"]).sum())
    # every metric in the legend, in drawing order, even one undefined for the first group
    legend = [t.get_text() for t in contrasts.get_legend().get_texts()]
    assert legend == [m.replace("_", " ") for m in dict.fromkeys(result.contrasts["metric"])]
