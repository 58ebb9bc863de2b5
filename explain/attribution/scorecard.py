"""The explanation scorecard: per method, faithfulness, robustness, stability, time, memory."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.ticker import FuncFormatter, NullFormatter

from ..checks import positive_int
from ..plotting import axes_or_new, new_figure, style
from ..results import Result, make_meta
from .core import attribute
from .inputs import modality
from .memory import PeakMemory
from .methods import METHODS, applicable_methods, method_title
from .robustness import robustness
from .trust import check_faithfulness, item_units, measure_faithfulness, rank_agreement

__all__ = ["ScorecardResult", "scorecard"]

_DEFAULT = ("integrated_gradients", "saliency", "input_x_gradient", "deeplift",
            "gradient_shap", "smoothgrad", "feature_ablation", "shapley_sampling", "lime",
            "kernel_shap")


class ScorecardResult(Result):
    """One row per method. ``to_frame()`` columns: ``method``, ``faithfulness_definition``
    (a key of ``explain.attribution.FAITHFULNESS_DEFINITIONS``), ``comprehensiveness``,
    ``random_comprehensiveness``, ``sufficiency``, ``random_sufficiency``, ``deletion_auc``,
    ``insertion_auc``, ``random_deletion_auc``, ``random_insertion_auc`` (means over inputs; see
    ``explain.attribution.FAITHFULNESS``), ``comprehensiveness_gain`` (comprehensiveness -
    random_comprehensiveness: how much better than a random ranking, negative = worse),
    ``better_than_random`` (``comprehensiveness_gain > 0``), ``n_beats_random`` (inputs whose
    comprehensiveness exceeds the random ranking's), ``beats_random`` (their share),
    ``infidelity``, ``random_infidelity`` (of
    random Gaussian attributions under the same perturbations) and ``sensitivity_max``
    (Captum's metrics, lower is better; NaN unless ``with_robustness=True``), ``stability`` (mean
    Spearman correlation of unit scores between ``seed`` and ``seed + 1``; 1 = identical),
    ``agreement`` (mean Spearman correlation with the first method), ``seconds`` (wall time of
    the attribution alone), ``peak_memory_mb`` (peak resident memory above the start of the
    call), ``n_inputs``. ``agreement_table``: every pair of methods (``rank_agreement``)."""

    PLOTS: Mapping[str, str] = MappingProxyType({
        "scorecard": "faithfulness vs random, stability, time and memory per method (four "
                     "panels, a figure of its own)",
        "faithfulness": "comprehensiveness per method next to a random ranking's (one panel)",
    })
    PLOT_OPTIONS: Mapping[str, tuple[str, ...]] = MappingProxyType({
        "scorecard": (), "faithfulness": ()})

    def __init__(self, loaded, frame: pd.DataFrame, agreement: pd.DataFrame,
                 parameters: Mapping[str, Any], seed: int, results: Mapping[str, Any]) -> None:
        self._frame = frame
        self.agreement_table = agreement
        self.results = MappingProxyType(dict(results))
        self.meta = make_meta(loaded, method="scorecard", parameters=parameters, seed=seed)
        self._freeze()

    def to_frame(self) -> pd.DataFrame:
        return self._frame.copy()

    def tables(self) -> dict[str, pd.DataFrame]:
        """``scorecard`` (``to_frame()``) and ``agreement`` (every pair of methods)."""
        return {"scorecard": self.to_frame(), "agreement": self.agreement_table.copy()}

    def summary(self) -> str:
        frame = self._frame
        best = frame.sort_values("comprehensiveness", ascending=False).iloc[0]
        worse = frame.method[~frame.better_than_random].tolist()
        return (f"scorecard of {len(frame)} methods on {int(best.n_inputs)} inputs "
                f"({best.faithfulness_definition} faithfulness); most comprehensive: "
                f"{best.method} ({best.comprehensiveness:.3f} vs random "
                f"{best.random_comprehensiveness:.3f}); no better than a random ranking: "
                f"{', '.join(worse) if worse else 'none'}")

    def _plot(self, kind: str, *, ax=None):
        frame = self._frame
        methods = frame.method.tolist()
        y = np.arange(len(methods))[::-1]
        panels = kind == "scorecard"
        if panels:
            if ax is not None:
                raise ValueError("plot('scorecard') draws four panels in a figure of its own "
                                 "and takes no ax; draw into an axes with "
                                 "plot('faithfulness', ax=ax), or call plot() without ax")
            fig, axes = new_figure(11.0, 1.2 + 0.35 * len(methods), ncols=4, sharey=True)
        else:
            fig, ax = axes_or_new(ax, 6.0, 1.4 + 0.4 * len(methods))
            axes = [ax]
        with style():
            a = axes[0]
            a.barh(y + 0.2, frame.comprehensiveness, height=0.4, color="#b2182b",
                   label="method")
            a.barh(y - 0.2, frame.random_comprehensiveness, height=0.4, color="0.7",
                   label="random ranking")
            a.set_yticks(y, [method_title(m) for m in methods])  # as in the captions
            a.set_xlabel("comprehensiveness (higher = better)")
            # plain tick labels: an offset/multiplier ("1e-6") would sit on the x label
            a.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:.2g}"))
            if panels:  # a legend of the figure, below everything, never on a bar or label
                fig.legend(*a.get_legend_handles_labels(), loc="outside lower center", ncols=2,
                           frameon=False, fontsize=8)
            else:  # beside the axes: inside, it covered the longest bar
                a.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7,
                         frameon=False)
            a.set_title("Faithfulness")
            if panels:
                axes[1].barh(y, frame.stability, color="#4393c3")
                axes[1].set_xlim(min(0.0, float(np.nanmin(frame.stability)) - 0.05), 1.05)
                axes[1].set_xlabel("Spearman, seed vs seed+1")
                axes[1].set_title("Stability")
                axes[2].barh(y, frame.seconds, color="0.4")
                axes[2].set_xscale("log")
                axes[2].xaxis.set_minor_formatter(NullFormatter())
                axes[2].set_xlabel("seconds (log scale)")
                axes[2].set_title("Time")
                axes[3].barh(y, frame.peak_memory_mb, color="0.55")
                axes[3].set_xlabel("peak memory above start (MB)")
                axes[3].set_title("Memory")
                fig.suptitle(f"Explanation scorecard, {int(frame.n_inputs.iloc[0])} inputs, "
                             f"{self.meta['model'].get('name', 'model')}")
        return fig


def scorecard(model, inputs, *, methods: Sequence[str] | None = None, target=None,
              n_steps: int = 50, seed: int = 0, faithfulness: str = "aopc",
              with_robustness: bool = False, robustness_inputs: int = 4,
              method_options: Mapping[str, Mapping] | None = None,
              **options) -> ScorecardResult:
    """Run each of ``methods`` (default: the built-in methods that apply, except GradCAM and
    occlusion) on the same ``inputs`` and compare them (columns in ``ScorecardResult``).

    Each method runs twice (``seed`` and ``seed + 1``) for stability; time and memory are those
    of the first run. ``with_robustness``: also Captum's infidelity and max-sensitivity on the
    first ``robustness_inputs`` inputs (sensitivity re-runs the method per perturbation: slow).
    ``faithfulness``: the definition of comprehensiveness and sufficiency (a key of
    ``explain.attribution.FAITHFULNESS_DEFINITIONS``). ``method_options``: method name -> the
    options of that method (``explain.attribution.METHODS[name].options``); ``options`` go to
    every ``attribute`` call.
    """
    definition = check_faithfulness(faithfulness, modality(model.task))
    if definition is None:
        raise ValueError("a scorecard compares faithfulness; pass faithfulness= one of "
                         "'aopc', 'eraser'")
    robustness_inputs = positive_int(robustness_inputs, "robustness_inputs", fix="pass e.g. robustness_inputs=4")
    applicable = applicable_methods(model.task)
    if methods is None:
        methods = [m for m in _DEFAULT if m in applicable]
    methods = list(methods)
    if not methods:
        raise ValueError(f"no methods given; valid: {', '.join(applicable)}")
    for method in methods:
        if method not in METHODS or method not in applicable:
            raise ValueError(f"method {method!r} cannot be scored for a {model.task!r} model; "
                             f"valid: {', '.join(applicable)}")
    method_options = dict(method_options or {})
    rows, results = [], {}
    for method in methods:
        extra = {**options, **dict(method_options.get(method, {}))}
        with PeakMemory() as memory:
            start = time.perf_counter()
            result = attribute(model, inputs, method=method, target=target, n_steps=n_steps,
                               seed=seed, faithfulness=False, **extra)
            seconds = time.perf_counter() - start
        trust = measure_faithfulness(model, result._run, output=result.output, seed=seed,
                                     memory_budget=result.meta["parameters"]["memory_budget"],
                                     definition=definition)
        result = result.with_faithfulness(trust)
        again = attribute(model, inputs, method=method, target=target, n_steps=n_steps,
                          seed=seed + 1, faithfulness=False, **extra)
        results[method] = result
        metrics = pd.DataFrame(trust.metrics)
        row = {"method": method, "faithfulness_definition": definition}
        for column in ("comprehensiveness", "random_comprehensiveness", "sufficiency",
                       "random_sufficiency", "deletion_auc", "insertion_auc",
                       "random_deletion_auc", "random_insertion_auc"):
            row[column] = float(metrics[column].mean())
        row["comprehensiveness_gain"] = row["comprehensiveness"] - row["random_comprehensiveness"]
        row["better_than_random"] = bool(row["comprehensiveness_gain"] > 0)
        row["n_beats_random"] = int(metrics.beats_random.sum())
        row["beats_random"] = float(metrics.beats_random.mean())
        robust = {"infidelity": float("nan"), "random_infidelity": float("nan"),
                  "sensitivity_max": float("nan")}
        if with_robustness:
            robust = robustness(model, result, max_inputs=robustness_inputs, seed=seed)
        row.update(robust)
        row["stability"] = _mean_spearman(result, again)
        row["seconds"] = seconds
        row["peak_memory_mb"] = memory.peak / 2**20
        row["n_inputs"] = len(result)
        rows.append(row)
    frame = pd.DataFrame(rows)
    agreement = rank_agreement(results) if len(results) > 1 else pd.DataFrame(
        columns=["method_a", "method_b", "spearman", "kendall", "n_explanations"])
    first = methods[0]
    frame["agreement"] = [1.0 if m == first else _pair(agreement, first, m) for m in methods]
    columns = ["method", "faithfulness_definition", "comprehensiveness",
               "random_comprehensiveness", "sufficiency", "random_sufficiency", "deletion_auc",
               "insertion_auc", "random_deletion_auc", "random_insertion_auc",
               "comprehensiveness_gain", "better_than_random", "n_beats_random",
               "beats_random", "infidelity", "random_infidelity", "sensitivity_max",
               "stability", "agreement", "seconds", "peak_memory_mb", "n_inputs"]
    parameters = {"methods": methods, "n_steps": n_steps, "target": target,
                  "faithfulness": definition, "with_robustness": with_robustness, **options}
    return ScorecardResult(model, frame[columns], agreement, parameters, seed, results)


def _pair(table: pd.DataFrame, a: str, b: str) -> float:
    hit = table[((table.method_a == a) & (table.method_b == b))
                | ((table.method_a == b) & (table.method_b == a))]
    return float(hit.spearman.iloc[0]) if len(hit) else float("nan")


def _mean_spearman(first, second) -> float:
    from scipy.stats import spearmanr

    values = []
    for k in range(len(first)):
        a = item_units(first._run, k)[0]
        b = item_units(second._run, k)[0]
        if np.array_equal(a, b):
            values.append(1.0)
        elif len(a) >= 2 and np.ptp(a) > 0 and np.ptp(b) > 0:
            values.append(float(spearmanr(a, b).statistic))
    return float(np.mean(values)) if values else float("nan")

