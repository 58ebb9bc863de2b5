"""How far an explanation can be trusted: faithfulness against a random ranking, rank agreement
between methods, Captum's infidelity and max-sensitivity, and measured cost.

Faithfulness works on *units*: words for text (a word is removed by replacing all its tokens with
the baseline token), raw columns for tabular data (a one-hot group is removed as one), patches
for images. Units are ranked by their signed score (most positive first: the units that push
the target up). With ``f`` the explained output (by default the target's probability):

* deletion curve: ``f`` after removing the top ``k`` % of units, ``k`` = 0, 10, ..., 100;
* insertion curve: ``f`` keeping only the top ``k`` % (everything else at the baseline);
* comprehensiveness (AOPC) = mean over ``k`` in 10..50 % of ``f(x) - deletion(k)`` (higher =
  the top units matter);
* sufficiency (AOPC) = mean over the same ``k`` of ``f(x) - insertion(k)`` (lower = the top
  units alone suffice);
* deletion AUC (lower is better) and insertion AUC (higher is better): trapezoid areas over the
  fraction axis;
* every number also for a random ranking of the same units (``n_random`` orders, seeded per
  input), the baseline any explanation must beat.

``k`` % of ``n`` units removes ``ceil(k * n / 100)`` units.
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

__all__ = ["AOPC_FRACTIONS", "CURVE_FRACTIONS", "FAITHFULNESS", "PeakMemory",
           "rank_agreement"]

#: Fractions of units removed for comprehensiveness and sufficiency (AOPC).
AOPC_FRACTIONS = (0.1, 0.2, 0.3, 0.4, 0.5)
#: Fractions of the deletion and insertion curves.
CURVE_FRACTIONS = tuple(round(0.1 * k, 1) for k in range(11))

#: Per-explanation faithfulness columns -> meaning.
FAITHFULNESS: Mapping[str, str] = MappingProxyType({
    "comprehensiveness": "mean drop of f when the top 10..50% units are removed (higher = better)",
    "sufficiency": "mean drop of f when only the top 10..50% units are kept (lower = better)",
    "random_comprehensiveness": "comprehensiveness of a random ranking",
    "random_sufficiency": "sufficiency of a random ranking",
    "deletion_auc": "area under the deletion curve (lower = better)",
    "insertion_auc": "area under the insertion curve (higher = better)",
    "random_deletion_auc": "deletion AUC of a random ranking",
    "random_insertion_auc": "insertion AUC of a random ranking",
    "drop_at_20": "drop of f when the top 20% of units are removed",
    "random_drop_at_20": "the same for a random ranking",
})


@dataclass
class Faithfulness:
    """Per explanation (lists aligned with the run's items)."""

    metrics: list[dict[str, float]]
    deletion: list[np.ndarray]
    insertion: list[np.ndarray]
    random_deletion: list[np.ndarray]
    random_insertion: list[np.ndarray]
    n_units: list[int]


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
                         n_random: int = 2) -> Faithfulness:
    """Deletion/insertion curves of every explanation of ``run`` and of random rankings."""
    from .core import item_offsets, scorer_for

    prepared = run.prepared
    scorer = scorer_for(loaded, prepared, output)
    out = Faithfulness([], [], [], [], [], [])
    offsets = item_offsets(prepared.items)
    with torch.no_grad():
        for k, item in enumerate(prepared.items):
            scores, element = item_units(run, k)
            n = len(scores)
            offset = offsets[k]
            rng = np.random.default_rng([seed, item.input_id, offset, 7])
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
            f_x = float(run.f_x[k])
            aopc = [CURVE_FRACTIONS.index(f) for f in AOPC_FRACTIONS]
            at20 = CURVE_FRACTIONS.index(0.2)
            out.metrics.append({
                "comprehensiveness": float(np.mean(f_x - deletion[aopc])),
                "sufficiency": float(np.mean(f_x - insertion[aopc])),
                "random_comprehensiveness": float(np.mean(f_x - random_del[aopc])),
                "random_sufficiency": float(np.mean(f_x - random_ins[aopc])),
                "deletion_auc": _trapezoid(deletion),
                "insertion_auc": _trapezoid(insertion),
                "random_deletion_auc": _trapezoid(random_del),
                "random_insertion_auc": _trapezoid(random_ins),
                "drop_at_20": float(f_x - deletion[at20]),
                "random_drop_at_20": float(f_x - random_del[at20]),
            })
            out.deletion.append(deletion)
            out.insertion.append(insertion)
            out.random_deletion.append(random_del)
            out.random_insertion.append(random_ins)
            out.n_units.append(n)
    return out


def _evaluate(scorer, prepared, item, masks: Sequence[np.ndarray], memory_budget: int
              ) -> np.ndarray:
    from .core import collate

    x, b, args, _ = collate(prepared, [item])
    mask = torch.from_numpy(np.stack(masks))
    chunk = max(1, min(len(masks), memory_budget // max(1, 8 * x.numel() * 4 * 10)))
    values = []
    for start in range(0, len(masks), chunk):
        m = mask[start:start + chunk]
        rows = m.shape[0]
        xs = torch.where(m, b.expand(rows, *b.shape[1:]), x.expand(rows, *x.shape[1:]))
        expanded = tuple(a.expand(rows, *a.shape[1:]) if isinstance(a, torch.Tensor) else a
                         for a in args)
        values.append(scorer(xs, *expanded).double())
    return torch.cat(values).numpy()


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


# ---------------------------------------------------------------------- robustness


def robustness(loaded, result, *, n_perturb_samples: int = 8, max_inputs: int = 8,
               seed: int = 0, noise: float = 0.1) -> dict[str, float]:
    """Captum's ``infidelity`` (normalised; also for random Gaussian attributions under the same
    perturbations: ``random_infidelity``) and ``sensitivity_max`` of ``result``'s method, mean
    over the first ``max_inputs`` explanations. Perturbations are Gaussian with standard
    deviation ``noise`` x the std of (input - baseline) for infidelity, and uniform within
    ``perturb_radius = noise`` x that std for sensitivity; both seeded."""
    from dataclasses import replace

    from captum.metrics import infidelity, sensitivity_max

    from .core import collate, compute, scorer_for

    run = result._run
    prepared = run.prepared
    method = run.method
    scorer = scorer_for(loaded, prepared, result.meta["parameters"]["output"])
    options = {k: v for k, v in result.meta["parameters"].items()
               if k not in ("n_steps", "tolerance", "batch_size", "memory_budget", "output",
                            "layer", "patch_size", "max_length", "baseline", "target",
                            "continuation")}
    n_steps = result.meta["parameters"]["n_steps"]
    n_steps = 16 if n_steps == "auto" else int(n_steps)
    infid, sens, random_infid = [], [], []
    for k, item in enumerate(prepared.items[:max_inputs]):
        x, b, args, _ = collate(prepared, [item])
        scale = float((x - b).std()) or 1.0
        element = _element_attr(run, k, item)

        def perturb(inputs, baselines=None, _scale=scale):
            noise_t = torch.randn_like(inputs) * noise * _scale
            return noise_t, inputs - noise_t

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed * 1_000_003 + k)
            value = infidelity(scorer, perturb, x, element[None], additional_forward_args=args,
                               n_perturb_samples=n_perturb_samples, normalize=True)
            # the same perturbations scored against random attributions of the same shape
            torch.manual_seed(seed * 1_000_003 + k)
            generator = torch.Generator().manual_seed(seed * 7_919 + k)
            noise_attr = torch.randn(element.shape, generator=generator)[None]
            random_value = infidelity(scorer, perturb, x, noise_attr,
                                      additional_forward_args=args,
                                      n_perturb_samples=n_perturb_samples, normalize=True)
        infid.append(float(value.mean()))
        random_infid.append(float(random_value.mean()))

        def explain_fn(xs, _item=item, _b=b):
            packed = isinstance(xs, tuple)
            xs = xs[0] if packed else xs
            outs = []
            for row in range(xs.shape[0]):
                clone = _clone_item(_item, xs[row], prepared.kind)
                sub = replace(prepared, items=[clone])
                sub_run = compute(loaded, sub, method, n_steps=n_steps, batch_size=1,
                                  memory_budget=1 << 30, seed=seed, progress=False,
                                  output=result.meta["parameters"]["output"], options=options,
                                  keep_elements=True, layer=result.meta["parameters"]["layer"])
                outs.append(_element_attr(sub_run, 0, clone))
            return (torch.stack(outs),) if packed else torch.stack(outs)

        def perturb_sens(inputs, perturb_radius=noise * scale):
            if isinstance(inputs, tuple):
                return tuple(v + torch.empty_like(v).uniform_(-perturb_radius, perturb_radius)
                             for v in inputs)
            return inputs + torch.empty_like(inputs).uniform_(-perturb_radius, perturb_radius)

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed * 1_000_003 + k + 17)
            value = sensitivity_max(explain_fn, x, perturb_func=perturb_sens,
                                    n_perturb_samples=max(2, n_perturb_samples // 2),
                                    max_examples_per_batch=max(2, n_perturb_samples // 2))
        sens.append(float(value.mean()))
    return {"infidelity": float(np.mean(infid)) if infid else float("nan"),
            "random_infidelity": float(np.mean(random_infid)) if random_infid
            else float("nan"),
            "sensitivity_max": float(np.mean(sens)) if sens else float("nan")}


def _clone_item(item, x, kind):
    from dataclasses import replace

    return replace(item, x=x.detach().clone())


def _element_attr(run, k, item) -> torch.Tensor:
    """Element-level attributions of item ``k``: kept ones, else unit scores spread evenly
    over each unit's elements (so sums per unit are preserved)."""
    if run.elements is not None and len(run.elements) > k:
        attr = run.elements[k]
        if item.kind == "text":
            attr = attr[:item.length]
        if attr.shape == item.units.shape:
            return attr.float()
    units = item.units
    scores = torch.from_numpy(np.asarray(run.unit_scores[k], dtype=np.float64))
    counts = torch.bincount(units.reshape(-1).clamp(min=0), minlength=len(scores)).double()
    spread = scores[units.clamp(min=0)] / counts[units.clamp(min=0)]
    return torch.where(units >= 0, spread, torch.zeros_like(spread)).float()


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
