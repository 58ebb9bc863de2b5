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
import os
import threading
import time
import tracemalloc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
import torch

from ..text import fold_scores
from .inputs import collate, content_seed
from .scorer import scorer_for

__all__ = ["AOPC_FRACTIONS", "CURVE_FRACTIONS", "ERASER_PERCENTS", "FAITHFULNESS",
           "FAITHFULNESS_DEFINITIONS", "PeakMemory", "rank_agreement"]

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
    """Scores per faithfulness unit of item ``k`` and the element -> unit map of its tensor."""
    item = run.prepared.items[k]
    scores = run.unit_scores[k]
    if item.kind != "text":
        return scores, item.units.numpy()
    word_index = np.asarray(item.text["word_index"])
    words = fold_scores(scores, word_index)
    token_unit = word_index  # -1 for special tokens: never removed
    element = np.broadcast_to(token_unit[:, None], tuple(item.units.shape)).copy()
    return words, element


def _counts(n: int) -> list[int]:
    return [min(n, math.ceil(round(f * n, 9))) for f in CURVE_FRACTIONS]


def _trapezoid(values: np.ndarray) -> float:
    return float(np.trapezoid(values, CURVE_FRACTIONS))


def measure_faithfulness(loaded, run, *, output: str, seed: int, memory_budget: int,
                         definition: str = "aopc", n_random: int = 2) -> Faithfulness:
    """Faithfulness of every explanation of ``run`` under ``definition`` (a key of
    ``FAITHFULNESS_DEFINITIONS``), its deletion/insertion curves, and those of random
    rankings."""
    prepared = run.prepared
    scorer = scorer_for(loaded, prepared, output)
    probability = scorer_for(loaded, prepared, "probability") if definition == "eraser" \
        else None
    out = Faithfulness(definition, [], [], [], [], [], [])
    with torch.no_grad():
        for k, item in enumerate(prepared.items):
            scores, element = item_units(run, k)
            n = len(scores)
            rng = np.random.default_rng(content_seed(seed, "random ranking", item))
            ranked = np.argsort(-scores, kind="stable")
            orders = [ranked] + [rng.permutation(n) for _ in range(n_random)]
            counts = _counts(n)
            masks = []  # True = element at baseline
            for order in orders:
                for c in counts:
                    masks.append(np.isin(element, order[:c]))       # deletion
                for c in counts:
                    masks.append(~np.isin(element, order[:c]) & (element >= 0))  # insertion
            values = _evaluate(scorer, prepared, item, masks, memory_budget)
            per = 2 * len(counts)
            curves = values.reshape(len(orders), per)
            deletion, insertion = curves[0, :len(counts)], curves[0, len(counts):]
            random_del = curves[1:, :len(counts)].mean(0)
            random_ins = curves[1:, len(counts):].mean(0)
            if definition == "eraser":
                comp, suff, random_comp, random_suff = _eraser(probability, prepared, item,
                                                               run.unit_scores[k], rng,
                                                               n_random)
            else:
                f_x = float(run.f_x[k])
                aopc = [CURVE_FRACTIONS.index(f) for f in AOPC_FRACTIONS]
                comp = float(np.mean(f_x - deletion[aopc]))
                suff = float(np.mean(f_x - insertion[aopc]))
                random_comp = float(np.mean(f_x - random_del[aopc]))
                random_suff = float(np.mean(f_x - random_ins[aopc]))
            out.metrics.append({
                "faithfulness_definition": definition,
                "comprehensiveness": comp,
                "sufficiency": suff,
                "random_comprehensiveness": random_comp,
                "random_sufficiency": random_suff,
                "comprehensiveness_gain": comp - random_comp,
                "beats_random": bool(comp > random_comp),
                "deletion_auc": _trapezoid(deletion),
                "insertion_auc": _trapezoid(insertion),
                "random_deletion_auc": _trapezoid(random_del),
                "random_insertion_auc": _trapezoid(random_ins),
            })
            out.deletion.append(deletion)
            out.insertion.append(insertion)
            out.random_deletion.append(random_del)
            out.random_insertion.append(random_ins)
            out.n_units.append(n)
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


def _eraser(scorer, prepared, item, token_scores: np.ndarray, rng, n_random: int
            ) -> tuple[float, float, float, float]:
    """ERASER comprehensiveness and sufficiency of one text item, and of shuffled scores."""
    ids = item.extra["input_ids"]
    special = np.asarray(item.text["special"], dtype=bool)
    fixed = special.copy()
    if scorer.task == "masked-lm":
        fixed[item.position] = True  # the mask whose prediction is explained
    candidates = np.flatnonzero(~fixed)
    token_scores = np.asarray(token_scores, dtype=np.float64)
    sets = [eraser_rationales(token_scores, candidates)]
    for _ in range(n_random):
        shuffled = token_scores.copy()
        shuffled[candidates] = rng.permutation(token_scores[candidates])
        sets.append(eraser_rationales(shuffled, candidates))
    keeps = [np.ones(len(ids), dtype=bool)]  # the full input: p(x)
    for rationales in sets:
        for top in rationales:
            removed = np.zeros(len(ids), dtype=bool)
            removed[top] = True
            keeps.append(~removed)               # comprehensiveness: rationale deleted
            keeps.append(removed | fixed)        # sufficiency: only the rationale (and specials)
    values = _evaluate_kept(scorer, prepared, item, keeps)
    p_x, rest = values[0], values[1:]
    results, cursor = [], 0
    for rationales in sets:
        if not rationales:  # ferret's values when no bin is kept
            results.append((0.0, 1.0))
            continue
        block = rest[cursor:cursor + 2 * len(rationales)].reshape(len(rationales), 2)
        cursor += 2 * len(rationales)
        results.append((float(np.mean(p_x - block[:, 0])), float(np.mean(p_x - block[:, 1]))))
    comp, suff = results[0]
    random_comp = float(np.mean([c for c, _ in results[1:]]))
    random_suff = float(np.mean([s for _, s in results[1:]]))
    return comp, suff, random_comp, random_suff


def _evaluate_kept(scorer, prepared, item, keeps: Sequence[np.ndarray], chunk: int = 64
                   ) -> np.ndarray:
    """The scorer's output on shortened copies of a text item: ``keeps[j]`` marks the tokens
    kept (the others are deleted, not replaced)."""
    ids = item.extra["input_ids"]
    types = item.extra.get("token_type_ids")
    decoder = item.extra.get("decoder_input_ids")
    values = []
    for start in range(0, len(keeps), chunk):
        part = keeps[start:start + chunk]
        width = max(int(k.sum()) for k in part)
        # built row by row on the CPU (where the item's ids are), then moved as one batch
        batch_ids = torch.full((len(part), width), prepared.pad_id, dtype=torch.long,
                               device="cpu")
        mask = torch.zeros(len(part), width, dtype=torch.long, device="cpu")
        batch_types = torch.zeros(len(part), width, dtype=torch.long, device="cpu") \
            if types is not None else None
        position = torch.full((len(part),), -1, dtype=torch.long, device="cpu")
        for r, keep in enumerate(part):
            kept = torch.from_numpy(np.flatnonzero(keep))
            batch_ids[r, :len(kept)] = ids[kept]
            mask[r, :len(kept)] = 1
            if batch_types is not None:
                batch_types[r, :len(kept)] = types[kept]
            if scorer.task == "masked-lm":  # the mask moves with the deletions before it
                position[r] = int(keep[:item.position].sum())
            elif scorer.task == "causal-lm":  # the next token after the shortened text
                position[r] = len(kept) - 1
            elif decoder is not None:  # seq2seq: the decoder input and position stay
                position[r] = item.position
        device = scorer.device
        batch_ids, mask, position = batch_ids.to(device), mask.to(device), position.to(device)
        batch_types = None if batch_types is None else batch_types.to(device)
        x = prepared.embedding(batch_ids).detach().float()
        rows = len(part)
        target = torch.full((rows,), item.target, dtype=torch.long, device=device)
        contrast = torch.full((rows,), item.contrast, dtype=torch.long, device=device)
        decoder_ids = None if decoder is None else decoder[None].expand(rows, -1).to(device)
        values.append(scorer(x, batch_ids, mask, batch_types, target, contrast,
                             position, decoder_ids).double())
    return torch.cat(values).cpu().numpy()


def _evaluate(scorer, prepared, item, masks: Sequence[np.ndarray], memory_budget: int
              ) -> np.ndarray:
    x, b, args, _ = collate(prepared, [item], device=scorer.device)
    mask = torch.from_numpy(np.stack(masks)).to(x.device)
    chunk = max(1, min(len(masks), memory_budget // max(1, 8 * x.numel() * 4 * 10)))
    values = []
    for start in range(0, len(masks), chunk):
        m = mask[start:start + chunk]
        rows = m.shape[0]
        xs = torch.where(m, b.expand(rows, *b.shape[1:]), x.expand(rows, *x.shape[1:]))
        expanded = tuple(a.expand(rows, *a.shape[1:]) if isinstance(a, torch.Tensor) else a
                         for a in args)
        values.append(scorer(xs, *expanded).double())
    return torch.cat(values).cpu().numpy()


# ----------------------------------------------------------------------- agreement


def _per_item_scores(result) -> list[np.ndarray]:
    return [item_units(result._run, k)[0] for k in range(len(result._run.prepared.items))]


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
    scores = {name: _per_item_scores(results[name]) for name in names}
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


# -------------------------------------------------------------------------- memory


def _rss() -> int:
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return -1


class PeakMemory:
    """Context manager measuring peak memory above the level at entry, in bytes.

    On Linux it samples the resident set size (``/proc/self/statm``) every ``interval`` seconds,
    which sees torch's tensor memory. Where ``/proc`` is missing it falls back to
    ``tracemalloc``'s peak (Python objects only; it does not see tensor storage)."""

    def __init__(self, interval: float = 0.002) -> None:
        self.interval = interval
        self.peak = 0
        self.rss_peak = 0
        self.python_peak = 0

    def __enter__(self) -> PeakMemory:
        self._start = _rss()
        self._max = self._start
        self._stop = threading.Event()
        self._tracing = self._start < 0 and not tracemalloc.is_tracing()
        if self._tracing:
            tracemalloc.start()
        if self._start < 0:
            tracemalloc.reset_peak()
            self._python_start = tracemalloc.get_traced_memory()[0]
        if self._start >= 0:
            self._thread = threading.Thread(target=self._poll, daemon=True)
            self._thread.start()
        return self

    def _poll(self) -> None:
        while not self._stop.is_set():
            value = _rss()
            if value > self._max:
                self._max = value
            time.sleep(self.interval)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._start >= 0:
            self._thread.join()
            self._max = max(self._max, _rss())
            self.rss_peak = max(0, self._max - self._start)
        if self._start < 0:
            self.python_peak = max(0, tracemalloc.get_traced_memory()[1] - self._python_start)
        if self._tracing:
            tracemalloc.stop()
        self.peak = max(self.rss_peak, self.python_peak)
