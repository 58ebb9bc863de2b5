"""Alignment error rate: cross attention and source attributions scored against a gold alignment.

``alignment_scores(attention_result, alignments)`` reads the cross attention of an
encoder-decoder (``explain.attention(model, sources, targets=targets)``, whose decoder reads
its start token then the target, as trained) and scores, against
gold word alignments given as Pharaoh strings (``"i-j ..."``: source word ``i`` is aligned to
target word ``j``, both 0-based), every (layer, head), the head mean of every layer, the mean
over all layers and heads, the cross-attention rollout and, when given, source attributions:
``alignment_scores(explain.attention(model, sources, targets=targets), alignments).best_head``.

How a matrix becomes an alignment (all at word level):

* words: the non-special word units of ``explain.text.word_units`` (word pieces of one word are
  one unit; special tokens such as ``[CLS]``, ``</s>`` are dropped, their attention share is not
  redistributed). Each gold index must name one of these words, or the row is refused.
* key side: the attention of a query to a source word is the **sum** over the word's tokens.
* query side: a target word is read at the decoder position whose next-token prediction is
  its first token, the token just before it under teacher forcing (the decoder input starts
  with the decoder start token). (On the seq2seq reference model the positions that *read* the
  word align worse: best-head AER 0.55 against 0.27.)
* hard alignment: each scored target word is linked to its **argmax** source word (ties: the
  first). Target words without a gold link (separators a normalised form adds) are skipped by
  default (``skip_unaligned``): an argmax always points somewhere, so they could only add errors.
* AER (Och & Ney 2003, sure links only): ``1 - 2|A & S| / (|A| + |S|)``, computed over the whole
  corpus (link counts summed over examples, as the paper does), with precision ``|A & S|/|A|``
  and recall ``|A & S|/|S|``.
* random baseline: each scored target word linked to a uniformly random source word; mean and
  standard deviation of its AER are exact (``|A|``, ``|S|`` fixed; ``|A & S|`` a sum of
  independent Bernoulli hits of probability ``s_j / n``: ``s_j`` gold links of target word
  ``j``, ``n`` source words): ``random_baseline``.
* rollout: the head-and-layer mean of the cross attention times the encoder's attention rollout
  (``explain.attention.attention_rollout`` of the ``"self"`` maps), so a key position is read as
  the source tokens the encoder mixed into it.
* attributions: one matrix ``(target words, source words)`` per example (or an
  ``AttributionResult`` of ``explain.attribute(model, sources, continuation=targets)``); the
  argmax is over ``|score|``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

import numpy as np
from matplotlib.patches import Rectangle

from ..plotting import SEQUENTIAL, axes_or_new, style, text_colour
from ..results import TableResult
from ..text import fold_scores
from .graph import attention_rollout

__all__ = ["KINDS", "AlignmentResult", "alignment_error_rate", "alignment_scores",
           "hard_alignment", "parse_alignment", "random_baseline"]

#: What a row of ``AlignmentResult.to_frame()`` scores (its ``kind`` column).
KINDS: Mapping[str, str] = MappingProxyType({
    "head": "the cross attention of one head of one layer",
    "layer_mean": "the cross attention of one layer, mean over its heads",
    "mean": "the cross attention, mean over every layer and head",
    "rollout": "the mean cross attention times the encoder's attention rollout",
    "attribution": "the source attributions of each target word (argmax of |score|)",
})

Link = tuple[int, int]


def parse_alignment(text: str, *, n_source: int, n_target: int,
                    row: int | None = None) -> frozenset[Link]:
    """Sure links ``{(source word, target word)}`` of one Pharaoh string ``"i-j i-j ..."``.

    Each index is checked against ``n_source`` / ``n_target`` words; ``row`` (the example's
    position) is named in every error. An empty string is an example without links."""
    where = f"alignment of row {row}" if row is not None else "alignment"
    if not isinstance(text, str):
        raise TypeError(f"{where} must be a Pharaoh string such as '0-1 2-0', got "
                        f"{type(text).__name__} {text!r}")
    links = set()
    for pair in text.split():
        parts = pair.split("-")
        if len(parts) != 2 or not all(p.isdigit() for p in parts):
            raise ValueError(f"{where}: {pair!r} is not a sure link 'i-j' (source word i, target "
                             f"word j, 0-based integers; possible links 'i?j' are not supported) "
                             f"in {text!r}")
        i, j = int(parts[0]), int(parts[1])
        if i >= n_source:
            raise ValueError(f"{where}: link {pair!r} names source word {i}, but the source has "
                             f"{n_source} words (0..{n_source - 1}); fix the alignment or the source")
        if j >= n_target:
            raise ValueError(f"{where}: link {pair!r} names target word {j}, but the target has "
                             f"{n_target} words (0..{n_target - 1}); fix the alignment or the target")
        links.add((i, j))
    return frozenset(links)


def alignment_error_rate(predicted, gold) -> float:
    """AER with sure links only: ``1 - 2|A & S| / (|A| + |S|)`` of two link sets (one example),
    or of two equally long sequences of link sets (a corpus: counts summed). NaN when both are
    empty."""
    hits, n_predicted, n_gold = _counts(predicted, gold)
    total = n_predicted + n_gold
    return 1.0 - 2.0 * hits / total if total else math.nan


def _counts(predicted, gold) -> tuple[int, int, int]:
    if isinstance(predicted, (set, frozenset)):
        predicted, gold = [predicted], [gold]
    predicted, gold = list(predicted), list(gold)
    if len(predicted) != len(gold):
        raise ValueError(f"got {len(predicted)} predicted and {len(gold)} gold alignments; pass "
                         f"one of each per example")
    hits = sum(len(set(a) & set(s)) for a, s in zip(predicted, gold, strict=True))
    return hits, sum(len(a) for a in predicted), sum(len(s) for s in gold)


def hard_alignment(matrix: np.ndarray, *, target_words: Sequence[int] | None = None
                   ) -> frozenset[Link]:
    """Links ``(argmax source word, target word)`` of a ``(target words, source words)`` matrix,
    for each of ``target_words`` (default: all rows); ties go to the first source word."""
    matrix = np.asarray(matrix, dtype=np.float64)
    rows = range(matrix.shape[0]) if target_words is None else target_words
    return frozenset((int(np.argmax(matrix[j])), int(j)) for j in rows)


def random_baseline(gold: Sequence[frozenset[Link]], n_sources: Sequence[int],
                    target_words: Sequence[Sequence[int]]) -> tuple[float, float]:
    """Exact mean and standard deviation of the corpus AER when each scored target word
    (``target_words[k]`` of example ``k``) is linked to a uniformly random one of the
    ``n_sources[k]`` source words."""
    hits_mean = hits_var = 0.0
    total = 0
    for links, n, words in zip(gold, n_sources, target_words, strict=True):
        total += len(words) + len(links)
        for j in words:
            p = sum(1 for (_, t) in links if t == j) / n
            hits_mean += p
            hits_var += p * (1 - p)
    if not total:
        return math.nan, math.nan
    return 1.0 - 2.0 * hits_mean / total, 2.0 * math.sqrt(hits_var) / total


# --------------------------------------------------------------------------- reading the maps


def _words(side, i: int) -> tuple[np.ndarray, list[str]]:
    """Per token of text ``i``: its word number among the non-special units (-1 for special
    tokens), and the words."""
    unit_word, labels, n = {}, [], 0
    for unit, (label, special) in enumerate(zip(side.unit_labels[i], side.unit_special[i],
                                                strict=True)):
        if not special:
            unit_word[unit] = n
            labels.append(label)
            n += 1
    return np.array([unit_word.get(u, -1) for u in side.unit_index[i]]), labels


def _query_rows(token_words: np.ndarray, n_words: int, row: int) -> np.ndarray:
    """``(target words, target tokens)``: picks the row of the token before each word."""
    rows = np.zeros((n_words, len(token_words)))
    for j in range(n_words):
        positions = np.flatnonzero(token_words == j)
        if positions[0] == 0:
            raise ValueError(f"row {row}: target word {j} is the decoder's first token, so no "
                             f"position predicts it; capture the attention with "
                             f"explain.attention(model, sources, targets=targets)")
        else:
            rows[j, positions[0] - 1] = 1.0
    return rows


class AlignmentResult(TableResult):
    """Alignment error rates of cross attention (and attributions) against a gold alignment.

    ``to_frame()``: one row per scored matrix: ``kind`` (a key of ``KINDS``), ``layer``,
    ``head`` (floats holding integers; NaN where the kind spans several), ``aer``, ``precision``,
    ``recall``, ``n_links`` (|A|), ``n_gold`` (|S|), ``n_hits`` (|A & S|), ``baseline_aer``,
    ``baseline_std`` (random alignment, exact) and ``improvement`` (= baseline_aer - aer).
    ``matrices[kind]``: per example, the ``(target words, source words)`` matrix of the best head
    (``"head"``) and of the attributions' ``|score|`` (``"attribution"``) when given. ``gold``: per example
    the gold links; ``source_words``, ``target_words``: per example the words; ``best_head``:
    ``(layer, head, aer)`` of the lowest AER (ties: the first). Immutable after construction.
    """

    PLOTS: Mapping[str, str] = MappingProxyType({
        "heads": "AER per layer x head of the cross attention, the random baseline in the title "
                 "and on the colour bar",
        "best_head": "the best head's cross attention of one example (source x target words), "
                     "gold links boxed, argmax links dotted",
        "attribution": "the attribution matrix of one example (source x target words), gold "
                       "links boxed, argmax links dotted",
    })
    PLOT_OPTIONS: Mapping[str, tuple[str, ...]] = MappingProxyType({
        "heads": (), "best_head": ("example",), "attribution": ("example",)})

    def __init__(self, table, *, matrices: Mapping[str, tuple[np.ndarray, ...]],
                 gold: Sequence[frozenset[Link]], source_words, target_words,
                 scored_words, meta: Mapping[str, Any]) -> None:
        super().__init__(table, meta=meta)
        self.matrices = MappingProxyType(dict(matrices))
        self.gold = tuple(gold)
        self.source_words = tuple(tuple(w) for w in source_words)
        self.target_words = tuple(tuple(w) for w in target_words)
        self.scored_words = tuple(tuple(w) for w in scored_words)
        heads = table[table["kind"] == "head"]
        best = heads.loc[heads["aer"].idxmin()]
        self.best_head = (int(best["layer"]), int(best["head"]), float(best["aer"]))
        self._freeze()

    def applicable_plots(self) -> tuple[str, ...]:
        return tuple(k for k in self.PLOTS if k != "attribution" or "attribution" in self.matrices)

    def summary(self) -> str:
        layer, head, aer = self.best_head
        baseline = float(self.table["baseline_aer"].iloc[0])
        text = (f"{len(self.gold)} examples; best cross-attention head: layer "
                f"{layer}, head {head} (AER {aer:.3f}; random alignment {baseline:.3f})")
        found = self.table[self.table["kind"] == "attribution"]
        if len(found):
            text += f"; attributions AER {float(found['aer'].iloc[0]):.3f}"
        return text

    def _plot(self, kind: str, *, ax=None, example: int = 0):
        baseline = float(self.table["baseline_aer"].iloc[0])
        if kind == "heads":
            return self._heads_figure(ax, baseline)
        if kind == "attribution" and "attribution" not in self.matrices:
            raise ValueError("this AlignmentResult has no attributions; pass attributions= to "
                             "alignment_scores()")
        if isinstance(example, bool) or example not in range(len(self.gold)):
            raise IndexError(f"example {example!r} is out of range; valid: 0..{len(self.gold) - 1}")
        k = int(example)
        matrix = self.matrices["head" if kind == "best_head" else "attribution"][k]
        if kind == "best_head":
            layer, head, aer = self.best_head
            title = f"cross attention, layer {layer} head {head} (corpus AER {aer:.2f})"
            label = "attention share"
        else:
            aer = float(self.table.loc[self.table["kind"] == "attribution", "aer"].iloc[0])
            title = f"source attributions (corpus AER {aer:.2f})"
            label = "|attribution|"
        return _alignment_figure(matrix, ax=ax, gold=self.gold[k],
                                 predicted=hard_alignment(matrix, target_words=self.scored_words[k]),
                                 source=self.source_words[k], target=self.target_words[k],
                                 title=f"example {k + 1}: {title}", label=label)

    def _heads_figure(self, ax, baseline: float):
        heads = self.table[self.table["kind"] == "head"]
        grid = heads.pivot(index="layer", columns="head", values="aer")
        values = grid.to_numpy(dtype=float)
        n_l, n_h = values.shape
        layer, head, aer = self.best_head
        std = float(self.table["baseline_std"].iloc[0])
        with style():
            fig, ax = axes_or_new(ax, max(4.5, 0.6 * n_h + 2.6), max(3.0, 0.5 * n_l + 1.8))
            # reversed: dark = low AER = good alignment
            image = ax.imshow(values, cmap=f"{SEQUENTIAL}_r", vmin=0.0, vmax=1.0, aspect="auto")
            ax.set_xticks(range(n_h), [str(int(h)) for h in grid.columns])
            ax.set_yticks(range(n_l), [str(int(x)) for x in grid.index])
            ax.set_xlabel("head")
            ax.set_ylabel("decoder layer")
            for r in range(n_l):
                for c in range(n_h):
                    ax.text(c, r, f"{values[r, c]:.2f}", ha="center", va="center", fontsize=7,
                            color=text_colour(image.cmap(image.norm(values[r, c]))))
            ax.add_patch(_box(list(grid.columns).index(head), list(grid.index).index(layer),
                              color="#d62728", width=2.0))
            ax.set_title(f"cross-attention AER per head (best: layer {layer}, head {head}, "
                         f"{aer:.2f})\nrandom alignment: {baseline:.2f} ± {std:.2f}", fontsize=9)
            bar = fig.colorbar(image, ax=ax, shrink=0.85)
            bar.set_label("AER (lower is better; red line: random alignment)", fontsize=7)
            bar.ax.axhline(baseline, color="#d62728", linewidth=2)
        return fig


def _box(x: float, y: float, *, color: str, width: float = 1.5) -> Rectangle:
    return Rectangle((x - 0.5, y - 0.5), 1.0, 1.0, fill=False, edgecolor=color, linewidth=width)


def _alignment_figure(matrix: np.ndarray, *, ax, gold, predicted, source, target, title: str,
                      label: str):
    """``matrix`` ``(target words, source words)`` drawn as source words (rows) x target words
    (columns), gold links boxed, predicted links dotted."""
    shown = matrix.T
    n_s, n_t = shown.shape
    with style():
        fig, ax = axes_or_new(ax, max(4.5, 0.45 * n_t + 3.0), max(3.5, 0.35 * n_s + 1.8))
        image = ax.imshow(shown, cmap=SEQUENTIAL, vmin=0.0, vmax=max(float(shown.max()), 1e-9),
                          aspect="auto")
        ax.set_xticks(range(n_t), list(target), rotation=60, ha="right", fontsize=7)
        ax.set_yticks(range(n_s), list(source), fontsize=7)
        ax.set_xlabel("target word")
        ax.set_ylabel("source word")
        for i, j in gold:
            ax.add_patch(_box(j, i, color="#d62728"))
        for i, j in predicted:
            ax.plot(j, i, "o", color="#ff7f0e", markersize=5, markeredgecolor="black",
                    markeredgewidth=0.6)
        ax.set_title(f"{title}\nred boxes: gold links; orange dots: argmax", fontsize=8)
        bar = fig.colorbar(image, ax=ax, shrink=0.85)
        bar.set_label(label, fontsize=7)
    return fig


# --------------------------------------------------------------------------- the analysis


def alignment_scores(attention, alignments: Sequence[str], *, attributions=None,
                     skip_unaligned: bool = True) -> AlignmentResult:
    """Score the cross attention of ``attention`` (an ``AttentionResult`` of an
    encoder-decoder, every layer and head captured) against ``alignments`` (one Pharaoh string
    per example, word indices as the module docstring defines them).

    ``attributions``: optional, per example a ``(target words, source words)`` array, or an
    ``AttributionResult`` of ``explain.attribute(model, sources, continuation=targets)``.
    ``skip_unaligned``: score only target words with a gold
    link. Returns an ``AlignmentResult``.
    """
    import pandas as pd

    from .result import AttentionResult

    if not isinstance(attention, AttentionResult) or "cross" not in attention.maps:
        raise TypeError(f"alignment_scores() takes the AttentionResult of an encoder-decoder "
                        f"(explain.attention(model, sources, targets=targets)), got "
                        f"{type(attention).__name__}"
                        f"{' without cross attention' if isinstance(attention, AttentionResult) else ''}")
    alignments = list(alignments) if not isinstance(alignments, str) else [alignments]
    if len(alignments) != len(attention):
        raise ValueError(f"got {len(alignments)} alignments for {len(attention)} examples; pass "
                         f"one Pharaoh string per example")
    target_side, source_side = attention.sides("cross")
    per_kind: dict[tuple, list[np.ndarray]] = {}
    gold, source_words, target_words, scored = [], [], [], []
    for k in range(len(attention)):
        src_index, src_labels = _words(source_side, k)
        tgt_index, tgt_labels = _words(target_side, k)
        links = parse_alignment(alignments[k], n_source=len(src_labels),
                                n_target=len(tgt_labels), row=k)
        gold.append(links)
        source_words.append(src_labels)
        target_words.append(tgt_labels)
        aligned = {j for _, j in links}
        scored.append([j for j in range(len(tgt_labels)) if not skip_unaligned or j in aligned])
        rows = _query_rows(tgt_index, len(tgt_labels), k)
        maps = np.asarray(attention.maps["cross"][k], dtype=np.float64)   # (L, H, Tq, Tk)
        words = fold_scores(rows @ maps, src_index)                       # (L, H, Wt, Ws)
        for li, layer in enumerate(attention.layers):
            for hi, head in enumerate(attention.heads):
                per_kind.setdefault(("head", layer, head), []).append(words[li, hi])
            per_kind.setdefault(("layer_mean", layer, None), []).append(words[li].mean(0))
        per_kind.setdefault(("mean", None, None), []).append(words.mean((0, 1)))
        if attention.layers == tuple(range(attention.n_layers)) and \
                attention.heads == tuple(range(attention.n_heads)):
            rollout = attention_rollout(np.asarray(attention.maps["self"][k], dtype=np.float64))
            per_kind.setdefault(("rollout", None, None), []).append(
                fold_scores(rows @ maps.mean((0, 1)) @ rollout, src_index))
    if attributions is not None:
        # argmax of |score|: a source word that pushes the prediction down is aligned to it too
        per_kind[("attribution", None, None)] = _attribution_matrices(
            attributions, [_words(target_side, k)[0] for k in range(len(attention))],
            [len(w) for w in source_words])
    baseline, spread = random_baseline(gold, [len(w) for w in source_words], scored)
    table_rows = []
    for (kind, layer, head), matrices in per_kind.items():
        predicted = [hard_alignment(m, target_words=s) for m, s in zip(matrices, scored,
                                                                        strict=True)]
        hits, n_links, n_gold = _counts(predicted, gold)
        aer = 1.0 - 2.0 * hits / (n_links + n_gold) if n_links + n_gold else math.nan
        table_rows.append({"kind": kind, "layer": layer, "head": head, "aer": aer,
                           "precision": hits / n_links if n_links else math.nan,
                           "recall": hits / n_gold if n_gold else math.nan,
                           "n_links": n_links, "n_gold": n_gold, "n_hits": hits,
                           "baseline_aer": baseline, "baseline_std": spread,
                           "improvement": baseline - aer})
    table = pd.DataFrame(table_rows).astype({"layer": float, "head": float})
    order = {kind: n for n, kind in enumerate(KINDS)}
    table = table.sort_values(["kind", "layer", "head"], key=lambda c: c.map(order)
                              if c.name == "kind" else c, kind="stable").reset_index(drop=True)
    best = table.loc[table.loc[table["kind"] == "head", "aer"].idxmin()]
    matrices = {"head": tuple(per_kind[("head", int(best["layer"]), int(best["head"]))])}
    if attributions is not None:
        matrices["attribution"] = tuple(per_kind[("attribution", None, None)])
    meta = {**dict(attention.meta), "method": "alignment_scores"}
    meta["parameters"] = {**dict(attention.meta.get("parameters", {})),
                          "query": "the decoder position predicting the word's first token",
                          "skip_unaligned": bool(skip_unaligned), "hard_alignment": "argmax",
                          "aer": "Och & Ney 2003, sure links only, corpus level",
                          "attributions": attributions is not None}
    return AlignmentResult(table, matrices=matrices, gold=gold, source_words=source_words,
                           target_words=target_words, scored_words=scored, meta=meta)


def _attribution_matrices(attributions, target_tokens: list[np.ndarray], n_sources: list[int]
                          ) -> list[np.ndarray]:
    """Per example a ``(target words, source words)`` array of ``|score|``, from arrays or from
    an ``AttributionResult`` (``target_tokens[k]``: the target word of each target token, -1 for
    special tokens)."""
    n_targets = [int(t.max()) + 1 if (t >= 0).any() else 0 for t in target_tokens]
    if hasattr(attributions, "to_frame") and hasattr(attributions, "explanations"):
        matrices = _from_result(attributions, target_tokens, n_targets, n_sources)
    else:
        matrices = [np.asarray(a, dtype=np.float64) for a in attributions]
    if len(matrices) != len(n_targets):
        raise ValueError(f"got {len(matrices)} attribution matrices for {len(n_targets)} "
                         f"examples; pass one per example")
    for k, (m, t, s) in enumerate(zip(matrices, n_targets, n_sources, strict=True)):
        if m.shape != (t, s):
            raise ValueError(f"attribution matrix of row {k} has shape {m.shape}; expected "
                             f"({t}, {s}): (target words, source words)")
    return [np.abs(m) for m in matrices]


def _from_result(result, target_tokens, n_targets, n_sources) -> list[np.ndarray]:
    """An encoder-decoder ``AttributionResult`` (one explanation per target token, its
    ``step``s in target order) as word matrices: a target word's row is the explanation of its
    first token, over the source words (``position`` at ``level="word"``)."""
    frame = result.to_frame(level="word")
    matrices = []
    for k, (tokens, n_t, n_s) in enumerate(zip(target_tokens, n_targets, n_sources, strict=True)):
        rows = frame[frame["input_id"] == k]
        steps = sorted(rows["step"].unique())
        words = tokens[tokens >= 0]
        if len(steps) != len(words):
            raise ValueError(f"the attributions of row {k} explain {len(steps)} target tokens, "
                             f"but its target has {len(words)}; attribute with "
                             f"continuation=<the same targets as the attention>")
        matrix = np.zeros((n_t, n_s))
        for j in range(n_t):
            step = steps[int(np.flatnonzero(words == j)[0])]
            picked = rows[rows["step"] == step]
            matrix[j, picked["position"].to_numpy(dtype=int)] = picked["score"].to_numpy(float)
        matrices.append(matrix)
    return matrices
