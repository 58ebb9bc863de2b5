"""How far an explanation can be trusted: faithfulness against a random ranking, rank agreement
between methods, Captum's infidelity and max-sensitivity, and measured cost.

Faithfulness has two named definitions (``FAITHFULNESS_DEFINITIONS``), side by side:

=================  ========================================  ======================================
                   ``"aopc"`` (ours, the default)            ``"eraser"`` (DeYoung et al. 2020, as
                                                             ferret 0.4.2/0.5.0 computes it; text
                                                             only)
=================  ========================================  ======================================
units ranked       words (text; all tokens of a word         tokens (special tokens and a masked
                   together), raw columns (a one-hot group   LM's mask are never ranked or
                   is one), patches                          removed); only positively scored
                                                             tokens enter a rationale
fractions          10, 20, 30, 40, 50 % of the units,        1, 5, 10, 20, 50 % of the tokens,
                   ``ceil(k * n / 100)`` units               ``floor(k * n / 100)`` tokens; a bin
                                                             of 0 tokens, with no positive token,
                                                             or with the same rationale as the
                                                             bin before is skipped
removed how        replaced by the baseline (text: the       deleted: the sequence gets shorter
                   baseline token, by default [PAD]; the     (ferret decodes the shortened ids and
                   sequence keeps its length)                tokenizes again; we feed the ids)
which output       ``output`` of ``attribute`` (by default   the softmax probability of the
                   the explained target's probability)       explained target (p(A) - p(B) for a
                                                             contrast), whatever ``output`` is
comprehensiveness  mean over the fractions of                mean over the kept bins of
                   ``f(x) - f(x without the top units)``     ``p(x) - p(x without the rationale)``;
                                                             0 when no bin is kept
sufficiency        mean of ``f(x) - f(only the top units)``  mean of ``p(x) - p(only the
                                                             rationale)``; 1 when no bin is kept
random ranking     ``n_random`` random permutations of the   the token scores shuffled over the
                   units                                     tokens, ``n_random`` times, same rules
=================  ========================================  ======================================

The ``"eraser"`` bins are the paper's (ferret's own default is 10, 20, ..., 100 %; pass
``removal_args={"thresholds": [0.01, 0.05, 0.1, 0.2, 0.5]}`` to ferret for the same numbers).
Feeding the shortened ids instead of ferret's decode-and-tokenize-again differs only where the
decoded text tokenizes differently (deleting ``drag`` from ``it drag ##s`` leaves ``its``).
Higher comprehensiveness and lower sufficiency are better. Whatever the definition, every
explanation also gets deletion and insertion curves (``f`` after replacing the top
``k`` % of units by the baseline, resp. keeping only them, ``k`` = 0, 10, ..., 100, from the
``"aopc"`` units and replacement) with their trapezoid areas, for the ranking and for random
ones. The random orders are seeded by ``seed`` and the input's content (not its position), and
are the same for every method, so methods are compared against the same random rankings.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
import torch
from torch.nn.utils.rnn import pad_sequence

from ..text import fold_scores
from .compute import bytes_per_row
from .inputs import collate, content_seed
from .scorer import scorer_for

__all__ = ["AOPC_FRACTIONS", "CURVE_FRACTIONS", "ERASER_PERCENTS", "FAITHFULNESS",
           "FAITHFULNESS_DEFINITIONS", "rank_agreement"]

#: Fractions of units removed for the "aopc" comprehensiveness and sufficiency.
AOPC_FRACTIONS = (0.1, 0.2, 0.3, 0.4, 0.5)
#: Percentages of tokens in the "eraser" rationales (DeYoung et al. 2020, section 4.2).
ERASER_PERCENTS = (1, 5, 10, 20, 50)
#: Fractions of the deletion and insertion curves.
CURVE_FRACTIONS = tuple(round(0.1 * k, 1) for k in range(11))

#: Faithfulness definition -> what it removes, from which output, at which fractions (the
#: module docstring has the two side by side).
FAITHFULNESS_DEFINITIONS: Mapping[str, str] = MappingProxyType({
    "aopc": "ours: the top 10-50% (ceil) of words, features or patches ranked by signed score "
            "replaced by the baseline (text: the baseline token, default [PAD]); drop of the "
            "explained output (output=, default the target's probability)",
    "eraser": "ERASER (DeYoung et al. 2020) as ferret computes it, text only: the top 1, 5, 10, "
              "20, 50% (floor) of positively scored non-special tokens deleted "
              "(comprehensiveness) or kept alone (sufficiency); drop of the target's softmax "
              "probability, averaged over the non-empty, distinct bins",
})

#: Per-explanation faithfulness columns -> meaning.
FAITHFULNESS: Mapping[str, str] = MappingProxyType({
    "faithfulness_definition": "the definition of comprehensiveness and sufficiency (a key of "
                               "FAITHFULNESS_DEFINITIONS)",
    "comprehensiveness": "mean drop of the output when the top units are removed (higher = "
                         "better)",
    "sufficiency": "mean drop of the output when only the top units are kept (lower = better)",
    "random_comprehensiveness": "comprehensiveness of a random ranking",
    "random_sufficiency": "sufficiency of a random ranking",
    "comprehensiveness_gain": "comprehensiveness - random_comprehensiveness (> 0: better than "
                              "a random ranking)",
    "beats_random": "comprehensiveness > random_comprehensiveness",
    "deletion_auc": "area under the deletion curve (baseline replacement; lower = better)",
    "insertion_auc": "area under the insertion curve (higher = better)",
    "random_deletion_auc": "deletion AUC of a random ranking",
    "random_insertion_auc": "insertion AUC of a random ranking",
})


@dataclass
class Faithfulness:
    """Per explanation (lists aligned with the run's items)."""

    definition: str
    metrics: list[dict]
    deletion: list[np.ndarray]
    insertion: list[np.ndarray]
    random_deletion: list[np.ndarray]
    random_insertion: list[np.ndarray]
    n_units: list[int]


def check_faithfulness(faithfulness, kind: str) -> str | None:
    """The definition named by ``attribute(faithfulness=...)``, or None to skip."""
    if faithfulness is False or faithfulness is None:
        return None
    if faithfulness is True:
        return "aopc"
    if not isinstance(faithfulness, str) or faithfulness not in FAITHFULNESS_DEFINITIONS:
        raise ValueError(f"unknown faithfulness definition {faithfulness!r}; valid: "
                         f"{', '.join(FAITHFULNESS_DEFINITIONS)} (or False to skip)")
    if faithfulness == "eraser" and kind != "text":
        raise ValueError(f"faithfulness='eraser' deletes tokens, which a {kind} model does not "
                         f"have; use faithfulness='aopc' (replacement by the baseline)")
    return faithfulness


def item_units(run, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Scores per faithfulness unit of item ``k`` and the unit of each of its tokens (text:
    its word, -1 for a special token, never removed) or of each element of its tensor."""
    item = run.prepared.items[k]
    scores = run.unit_scores[k]
    if item.kind != "text":
        return scores, item.units.numpy()
    word_index = np.asarray(item.text["word_index"])
    return fold_scores(scores, word_index), word_index


def _counts(n: int) -> list[int]:
    return [min(n, math.ceil(round(f * n, 9))) for f in CURVE_FRACTIONS]


def _trapezoid(values: np.ndarray) -> float:
    return float(np.trapezoid(values, CURVE_FRACTIONS))


def measure_faithfulness(loaded, run, *, output: str, seed: int, memory_budget: int,
                         definition: str = "aopc", n_random: int = 2,
                         progress: bool | None = None) -> Faithfulness:
    """Faithfulness of every explanation of ``run`` under ``definition`` (a key of
    ``FAITHFULNESS_DEFINITIONS``), its deletion/insertion curves, and those of random
    rankings. The masked copies of all inputs are evaluated together, so the numbers do not
    depend on which inputs are measured together. ``progress``: a bar over the masked copies
    (``None``: for 100 inputs or more, as ``attribute`` does)."""
    prepared = run.prepared
    scorer = scorer_for(loaded, prepared, output)
    text = prepared.kind == "text"
    masks, unit_maps, n_units, eraser = [], [], [], []
    for k, item in enumerate(prepared.items):
        scores, unit_map = item_units(run, k)
        n = len(scores)
        rng = np.random.default_rng(content_seed(seed, "random ranking", item))
        counts = np.array(_counts(n))
        blocks = []
        for order in [np.argsort(-scores, kind="stable")] + [rng.permutation(n)
                                                             for _ in range(n_random)]:
            # True = at the baseline: the top c units (deletion), then all others (insertion)
            top = np.argsort(order)[None, :] < counts[:, None]
            blocks += [top, ~top]
        # a last column for the elements of no unit (special tokens): never at the baseline
        rows = np.pad(np.concatenate(blocks), ((0, 0), (0, 1)))
        if text:  # tokens kept (all), then tokens at the baseline
            rows = np.concatenate([np.ones_like(rows[:, unit_map]), rows[:, unit_map]], axis=1)
        masks.append(rows)
        unit_maps.append(unit_map)
        n_units.append(n)
        if definition == "eraser":
            eraser.append(_eraser_rows(loaded.task, item, run.unit_scores[k], rng, n_random))
    from ..progress import tqdm_class

    show = progress if progress is not None else len(prepared.items) >= 100
    bar = tqdm_class()(total=0, disable=not show, desc="faithfulness", unit="copy")
    with torch.no_grad(), bar:
        values = _evaluate_text(scorer, prepared, masks, memory_budget, bar) if text else \
            _evaluate_tensors(scorer, prepared, masks, unit_maps, memory_budget, bar)
        if definition == "eraser":
            probability = scorer_for(loaded, prepared, "probability")
            kept = _evaluate_text(probability, prepared, [rows for _, rows in eraser],
                                  memory_budget, bar)
    out = Faithfulness(definition, [], [], [], [], [], n_units)
    points = len(CURVE_FRACTIONS)
    for k in range(len(prepared.items)):
        curves = values[k].reshape(n_random + 1, 2 * points)
        deletion, insertion = curves[0, :points], curves[0, points:]
        random_del = curves[1:, :points].mean(0)
        random_ins = curves[1:, points:].mean(0)
        if definition == "eraser":
            comp, suff, random_comp, random_suff = _eraser_metrics(eraser[k][0], kept[k])
        else:
            aopc = [CURVE_FRACTIONS.index(f) for f in AOPC_FRACTIONS]
            comp, suff, random_comp, random_suff = (
                float(np.mean(float(run.f_x[k]) - curve[aopc]))
                for curve in (deletion, insertion, random_del, random_ins))
        out.metrics.append({
            "faithfulness_definition": definition, "comprehensiveness": comp,
            "sufficiency": suff, "random_comprehensiveness": random_comp,
            "random_sufficiency": random_suff, "comprehensiveness_gain": comp - random_comp,
            "beats_random": bool(comp > random_comp), "deletion_auc": _trapezoid(deletion),
            "insertion_auc": _trapezoid(insertion),
            "random_deletion_auc": _trapezoid(random_del),
            "random_insertion_auc": _trapezoid(random_ins)})
        for curves, curve in zip((out.deletion, out.insertion, out.random_deletion,
                                  out.random_insertion),
                                 (deletion, insertion, random_del, random_ins), strict=True):
            curves.append(curve)
    return out


def eraser_rationales(scores: np.ndarray, candidates: np.ndarray) -> list[np.ndarray]:
    """The token positions of each kept ERASER bin: per percentage of ``ERASER_PERCENTS``,
    the ``floor(pct * n / 100)`` highest-scoring of the ``n`` candidate positions, of which
    only the positively scored ones; bins of no token, or equal to the previous kept bin, are
    skipped (ferret's rules)."""
    n = len(candidates)
    ranked = candidates[np.argsort(-scores[candidates], kind="stable")]
    kept: list[np.ndarray] = []
    previous: set[int] | None = None
    for pct in ERASER_PERCENTS:
        top = pct * n // 100
        if top == 0:
            continue
        chosen = [int(t) for t in ranked[:top] if scores[t] > 0]
        if not chosen or set(chosen) == previous:
            continue
        previous = set(chosen)
        kept.append(np.sort(np.asarray(chosen)))
    return kept


def _eraser_rows(task: str, item, token_scores: np.ndarray, rng, n_random: int
                 ) -> tuple[list[list[np.ndarray]], np.ndarray]:
    """The ERASER rationales of one text item (its scores', then ``n_random`` shuffles'), and
    the copies to evaluate (``_evaluate_text``'s masks): first the full input, then per
    rationale the input without it (comprehensiveness) and the rationale alone (sufficiency)."""
    n_tokens = len(item.extra["input_ids"])
    fixed = np.array(item.text["special"], dtype=bool)
    if task == "masked-lm":
        fixed[item.position] = True  # the mask whose prediction is explained
    candidates = np.flatnonzero(~fixed)
    token_scores = np.asarray(token_scores, dtype=np.float64)
    sets = [eraser_rationales(token_scores, candidates)]
    for _ in range(n_random):
        shuffled = token_scores.copy()
        shuffled[candidates] = rng.permutation(token_scores[candidates])
        sets.append(eraser_rationales(shuffled, candidates))
    keeps = [np.ones(n_tokens, dtype=bool)]  # the full input: p(x)
    for rationales in sets:
        for top in rationales:
            removed = np.zeros(n_tokens, dtype=bool)
            removed[top] = True
            keeps.append(~removed)               # comprehensiveness: rationale deleted
            keeps.append(removed | fixed)        # sufficiency: only the rationale (and specials)
    keeps = np.stack(keeps)
    return sets, np.concatenate([keeps, np.zeros_like(keeps)], axis=1)  # nothing replaced


def _eraser_metrics(sets: list[list[np.ndarray]], values: np.ndarray
                    ) -> tuple[float, float, float, float]:
    """ERASER comprehensiveness and sufficiency of the scores' rationales and the mean of the
    shuffles', from the probabilities of the copies of ``_eraser_rows``."""
    p_x, cursor, results = values[0], 1, []
    for rationales in sets:
        block = values[cursor:cursor + 2 * len(rationales)].reshape(-1, 2)
        cursor += 2 * len(rationales)
        # ferret's values when no bin is kept: 0 and 1
        results.append(np.mean(p_x - block, axis=0) if rationales else np.array([0.0, 1.0]))
    random = np.mean(results[1:], axis=0)
    return float(results[0][0]), float(results[0][1]), float(random[0]), float(random[1])


# ------------------------------------------------------------------- batched forwards

#: Most tokens (rows x padded length) in one faithfulness forward pass of a text model, and
#: rows in one of a tabular or image model, where the memory budget allows: the best sizes
#: measured on the reference models (bench/bench_attribution.py, bench/RESULTS.md).
FORWARD_TOKENS = 2048
FORWARD_ROWS = 1024


def _layout(masks: Sequence[np.ndarray]):
    """Per item its distinct mask rows and, per row, the index of its distinct row; and for
    the distinct rows of all items (item by item), their item and index within it."""
    distinct, inverse = zip(*(np.unique(m, axis=0, return_inverse=True) for m in masks),
                          strict=True)
    sizes = [len(d) for d in distinct]
    owner = np.repeat(np.arange(len(masks)), sizes)
    return distinct, inverse, owner, np.concatenate([np.arange(s) for s in sizes])


def _per_item(values: np.ndarray, distinct, inverse) -> list[np.ndarray]:
    """The values of the distinct rows (item by item) -> every row of every item."""
    ends = np.cumsum([len(d) for d in distinct])
    return [values[end - len(d):end][back.reshape(-1)]
            for end, d, back in zip(ends, distinct, inverse, strict=True)]


def _batches(widths: np.ndarray, rows_for) -> list[np.ndarray]:
    """Row indices sorted by width (stable), cut greedily into batches of at most
    ``rows_for(the batch's largest width)`` rows."""
    order = np.argsort(widths, kind="stable")
    batches, start = [], 0
    for end in range(1, len(order) + 1):
        if end == len(order) or end - start >= rows_for(int(widths[order[end]])):
            batches.append(order[start:end])
            start = end
    return batches


def _rows_for(scorer, prepared, memory_budget: int):
    """Rows of one forward pass of width ``w`` (tokens; 0 for a tabular or image model) within
    ``memory_budget`` and the best size. Memory of a row: the leaf outputs of a probe forward
    on the longest item (``bytes_per_row`` counts them three times, for a backward pass)."""
    longest = max(prepared.items, key=lambda it: it.length)
    x, _, args, _ = collate(prepared, [longest], device=scorer.device)
    token_bytes = max(1, bytes_per_row(scorer, x, args) // (3 * max(1, longest.length)))
    if prepared.kind != "text":
        return lambda width: max(1, min(FORWARD_ROWS, memory_budget // token_bytes))
    return lambda width: max(1, min(FORWARD_TOKENS, memory_budget // token_bytes)
                             // max(1, width))


def _evaluate_tensors(scorer, prepared, masks: Sequence[np.ndarray],
                      unit_maps: Sequence[np.ndarray], memory_budget: int, bar
                      ) -> list[np.ndarray]:
    """The scorer's output on copies of tabular or image items with some units at the
    baseline: ``masks[k]`` ``(rows, n_units + 1)`` bool, True = unit at the baseline;
    ``unit_maps[k]`` the unit of each element of its tensor. Returns per item ``(rows,)``."""
    items = prepared.items
    distinct, inverse, owner, local = _layout(masks)
    values = np.empty(len(owner))
    bar.total += len(owner)
    for batch in _batches(np.zeros(len(owner), dtype=np.int64),
                          _rows_for(scorer, prepared, memory_budget)):
        uniq, which = np.unique(owner[batch], return_inverse=True)
        x, b, args, _ = collate(prepared, [items[k] for k in uniq], device=scorer.device)
        at_baseline = np.stack([distinct[k][j][unit_maps[k]]
                                for k, j in zip(owner[batch], local[batch], strict=True)])
        index = torch.from_numpy(which).to(x.device)
        xs = torch.where(torch.from_numpy(at_baseline).to(x.device), b[index], x[index])
        values[batch] = scorer(xs, *(a[index] if isinstance(a, torch.Tensor) else a
                                     for a in args)).double().cpu().numpy()
        bar.update(len(batch))
    return _per_item(values, distinct, inverse)


def _evaluate_text(scorer, prepared, masks: Sequence[np.ndarray], memory_budget: int, bar
                   ) -> list[np.ndarray]:
    """The scorer's output on copies of text items: ``masks[k]`` ``(rows, 2 T)`` bool: the
    tokens each copy of item ``k`` keeps (the others are deleted: the copy is shorter), then
    those it replaces by the baseline token. Returns per item ``(rows,)``."""
    items = prepared.items
    distinct, inverse, owner, local = _layout(masks)
    widths = np.concatenate([d[:, :d.shape[1] // 2].sum(1) for d in distinct]).astype(int)
    cpu, device = torch.device("cpu"), scorer.device
    values = np.empty(len(owner))
    bar.total += len(owner)
    for batch in _batches(widths, _rows_for(scorer, prepared, memory_budget)):
        n, width = len(batch), int(widths[batch].max())
        its = [items[k] for k in owner[batch]]
        # built row by row on the CPU (where the items' ids are), then moved as one batch;
        # rows: input ids, baseline ids, token types, attention mask, at the baseline
        grid = torch.zeros(5, n, width, dtype=torch.long, device=cpu)
        grid[:2] = prepared.pad_id
        explained = torch.tensor(  # target, contrast, position per row
            [[it.target, it.contrast, it.position] for it in its], dtype=torch.long, device=cpu)
        decoder = pad_sequence([it.extra["decoder_input_ids"] for it in its], batch_first=True,
                               padding_value=prepared.pad_id).to(device) \
            if "decoder_input_ids" in its[0].extra else None  # right-padded: it is causal
        for r, (item, k, j) in enumerate(zip(its, owner[batch], local[batch], strict=True)):
            row = torch.from_numpy(distinct[k][j])
            kept = row[:item.length].nonzero().flatten()
            m = len(kept)
            grid[0, r, :m] = item.extra["input_ids"][kept]
            grid[1, r, :m] = item.extra["baseline_ids"][kept]
            if "token_type_ids" in item.extra:
                grid[2, r, :m] = item.extra["token_type_ids"][kept]
            grid[3, r, :m] = 1
            grid[4, r, :m] = row[item.length:][kept]
            if scorer.task == "masked-lm":  # the mask moves with the deletions before it
                explained[r, 2] = int(row[:item.position].sum())
            elif scorer.task == "causal-lm":  # the next token after the shortened text
                explained[r, 2] = m - 1
        grid, explained = grid.to(device), explained.to(device)
        ids, types = grid[0], grid[2] if "token_type_ids" in its[0].extra else None
        x = torch.where(grid[4, ..., None].bool(), prepared.embedding(grid[1]),
                        prepared.embedding(ids)).detach().float()
        values[batch] = scorer(x, ids, grid[3], types, *explained.T, decoder).double().cpu().numpy()
        bar.update(len(batch))
    return _per_item(values, distinct, inverse)


# ----------------------------------------------------------------------- agreement


def rank_agreement(results: Mapping[str, object] | Sequence[object]):
    """Rank agreement between attribution results on the same inputs.

    ``results``: ``AttributionResult``s (a list, named by their method, or a mapping name ->
    result). Returns a DataFrame with one row per pair: ``method_a``, ``method_b``,
    ``spearman`` and ``kendall`` (mean over explanations of the rank correlation of unit
    scores: words, features or patches), ``n_explanations``. Inputs with fewer than 3 units or
    constant scores are skipped (a correlation is undefined there).
    """
    import pandas as pd
    from scipy.stats import kendalltau, spearmanr

    if not isinstance(results, Mapping):
        results = {r.meta["method"]: r for r in results}
    names = list(results)
    if len(names) < 2:
        raise ValueError("rank agreement needs at least two results")
    scores = {name: [item_units(results[name]._run, k)[0]
                     for k in range(len(results[name]._run.prepared.items))] for name in names}
    lengths = {len(v) for v in scores.values()}
    if len(lengths) != 1:
        raise ValueError("the results explain different numbers of inputs; run every method "
                         "on the same inputs")
    rows = []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            rho, tau = [], []
            for sa, sb in zip(scores[a], scores[b], strict=True):
                if len(sa) != len(sb):
                    raise ValueError(f"{a!r} and {b!r} have different units for the same input")
                if len(sa) < 3 or np.ptp(sa) == 0 or np.ptp(sb) == 0:
                    continue
                rho.append(spearmanr(sa, sb).statistic)
                tau.append(kendalltau(sa, sb).statistic)
            rows.append({"method_a": a, "method_b": b,
                         "spearman": float(np.mean(rho)) if rho else float("nan"),
                         "kendall": float(np.mean(tau)) if tau else float("nan"),
                         "n_explanations": len(rho)})
    return pd.DataFrame(rows, columns=["method_a", "method_b", "spearman", "kendall",
                                       "n_explanations"])
