"""Counterfactual probes for text classifiers and causal LMs: change only who a sentence is
about.

Two designs, one result type:

* **templates x identity terms** (``counterfactual(model, axis="religion")``): every template
  (``"{} wrote this review."``) is filled with every term of every group of an axis
  (``explain/data/identity_terms.json``; ``identity_terms()`` returns an editable copy). The unit
  of pairing is the template: a group's score on a template is the mean over its terms, and
  each group is compared with the axis's reference group template by template.
* **swaps in real sentences** (``counterfactual(model, texts, swaps="gender")``): word pairs
  (he/she, his/her, names ...) are swapped in both directions, keeping capitalisation, and
  each sentence is paired with its own counterfactual. Sentences with nothing to swap are
  counted and left out (``result.meta['parameters']['n_unchanged']``). Each pair is ordered by
  the two sides of the swap list (male/female for ``"gender"``), so every change has the same
  direction whichever side the original sentence was written on.

Reported per compared group: mean score and mean change against the reference, each with a
Student-t interval over the units (templates or sentences; see ``mean_interval``), the mean
absolute change, the rate at which the predicted label flips, and a paired test of
the changes (``TESTS``: Wilcoxon signed-rank by default, or the paired t-test), named in the
``test`` column, Holm-adjusted over the compared groups. The tests' null is that the identity
change does nothing (group and reference scores exchangeable, so each change is symmetric about
0): there both hold their level (measured false-positive rates 0.023-0.054 at p < 0.05, 6 to 50
units). A change that is skewed but has mean 0 is not that null, and both flag it more often
(Wilcoxon, which sees the asymmetry, increasingly so with more units), so a significant test
with an interval of the mean change that contains 0 is possible (bench/RESULTS.md). Each
comparison gets a ``verdict`` (``VERDICTS``): a significant change whose mean absolute size
stays under ``negligible_change`` (default 0.01, one percentage point of the target
probability) is called negligible, never a finding. The templates design also measures its
**baseline**: the same templates with one neutral term changed for another
(``baseline_terms``, default ``"a person"`` -> ``"someone"``), the change a word swap causes
when no identity changes (``result.baseline``). With ``attributions=True`` the probe also asks
``explain.attribute`` which words the model blames, and reports the share of each text's
attribution that falls on the identity term (``result.blame``).

**Counterfactual continuations** (a ``causal-lm``, ``continuation=" nurse"``, templates such as
``"The {} worked as a"``): a text's score is ``log P(continuation | text)`` in nats; the same
pairing, intervals, tests, baseline and verdicts apply, a change ``d`` multiplies the
continuation's probability by ``exp(d)``, and ``negligible_change`` defaults to
``LM_NEGLIGIBLE_CHANGE`` (0.1 nats, about 10%). ``target``, ``attributions`` and label flips do
not apply (``flip_rate`` is NaN, no ``predicted_label``).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd

from ..checks import non_negative_float, one_of, probability
from ..results import Result, make_meta
from ._common import check_confidence, class_probabilities, holm, loaded_model
from .intervals import interval_errors, mean_interval
from .likelihood import sentence_scores
from .terms import _swap_rows, _template_rows, fill_template, identity_terms

__all__ = ["LM_NEGLIGIBLE_CHANGE", "TESTS", "VERDICTS", "CounterfactualResult", "counterfactual"]

#: Default ``negligible_change`` of a causal LM's continuation log-probability, in nats.
LM_NEGLIGIBLE_CHANGE = 0.1

#: Paired tests of the score changes, name -> scipy function used.
TESTS: Mapping[str, str] = MappingProxyType({
    "wilcoxon": "scipy.stats.wilcoxon (signed-rank; zero changes dropped, 'wilcox' method)",
    "t": "scipy.stats.ttest_rel (paired t-test)",
})

#: What a comparison's ``verdict`` says, verdict -> rule (``alpha`` and ``negligible_change``
#: are arguments of ``counterfactual``).
VERDICTS: Mapping[str, str] = MappingProxyType({
    "change": "Holm-adjusted p < alpha and mean |change| >= negligible_change",
    "negligible": "Holm-adjusted p < alpha but mean |change| < negligible_change: significant "
                  "and too small to matter",
    "not significant": "Holm-adjusted p >= alpha (or too few pairs to test)",
})


def _paired_test(changes: np.ndarray, test: str) -> tuple[float, float]:
    from scipy import stats

    changes = changes[np.isfinite(changes)]
    if len(changes) < 2 or np.allclose(changes, 0.0, atol=1e-12):
        return 0.0 if len(changes) else float("nan"), 1.0 if len(changes) else float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if test == "wilcoxon":
            result = stats.wilcoxon(changes, zero_method="wilcox")
        else:
            result = stats.ttest_1samp(changes, 0.0)  # identical to ttest_rel on the pairs
    return float(result.statistic), float(result.pvalue)


def counterfactual(
    model: Any,
    texts: Sequence[str] | None = None,
    *,
    axis: str = "gender",
    terms: Mapping[str, Sequence[str]] | None = None,
    reference: str | None = None,
    templates: Sequence[str] | None = None,
    swaps: str | Sequence[Sequence[str]] | None = None,
    target: int | str | None = None,
    continuation: str | Sequence[str] | None = None,
    test: str = "wilcoxon",
    alpha: float = 0.05,
    negligible_change: float | None = None,
    baseline_terms: Sequence[str] | None = ("a person", "someone"),
    confidence: float = 0.95,
    attributions: bool = False,
    attribution_method: str = "integrated_gradients",
    batch_size: int = 32,
) -> CounterfactualResult:
    """Probe a text classifier (or a causal LM's continuation) with counterfactual identity
    changes.

    Without ``texts``: templates x terms. ``axis`` names a built-in axis of
    ``identity_terms()['axes']`` (gender, gender_names, race, race_names, religion, age,
    nationality, disability, sexual_orientation), or ``terms`` gives your own ``{group: [terms]}``;
    ``reference`` is the group the others are compared with (default: the axis's reference, or
    the first group); ``templates`` default to the built-in ones (each needs ``{}``).

    With ``texts``: real sentences, swapped with ``swaps`` (a built-in swap list name such as
    ``"gender"``, ``"gender_names"``, ``"race_names"``, or your own ``[(word, word), ...]``;
    default ``"gender"``).

    ``target``: the class whose probability is the score (name or index; default: class 1 of a
    binary model, else the last class). ``continuation`` (causal LMs only, required there): the
    score is its log-probability given each text, ``log P(text + continuation) - log P(text)``
    in nats; one string, or one per template (per text with ``texts``). Start it with a space
    (``" nurse"``) so that the text's own tokens stay the same. ``test``: a key of ``TESTS``;
    ``alpha``: the level at which a Holm-adjusted p-value is significant;
    ``negligible_change``: a significant change whose mean absolute size is smaller than this
    is called negligible (``VERDICTS``); it is in probability of the target class for a
    classifier (default 0.01) and in nats of the continuation's log-probability for a causal LM
    (default ``LM_NEGLIGIBLE_CHANGE``). ``baseline_terms``: two neutral terms put in the same
    templates, whose change is the baseline of the templates design (``None``: no baseline; the
    swaps design has none). ``attributions``: also run ``explain.attribute``
    (``attribution_method``) on every text and report the share of attribution on the identity
    term. ``confidence``: the level of the intervals (Student-t over the units, see
    ``explain.fairness.intervals.mean_interval``).
    """
    model = loaded_model(model, analysis="counterfactual")
    if model is None or model.task not in ("sequence-classification", "causal-lm"):
        raise TypeError("counterfactual probes need a text classifier (sequence-classification "
                        "LoadedModel) or a causal LM (causal-lm, with continuation=...)")
    causal = model.task == "causal-lm"
    one_of(test, TESTS, "test")
    confidence = check_confidence(confidence)
    alpha = probability(alpha, "alpha", fix="e.g. alpha=0.05")
    if causal:
        negligible_change = non_negative_float(
            LM_NEGLIGIBLE_CHANGE if negligible_change is None else negligible_change,
            "negligible_change", fix="it is a change of log-probability in nats, e.g. 0.1")
    else:
        negligible_change = probability(
            0.01 if negligible_change is None else negligible_change, "negligible_change",
            open_interval=False, fix="it is a change of probability, e.g. 0.01")
    if baseline_terms is not None and (
            isinstance(baseline_terms, str) or len(baseline_terms) != 2
            or not all(isinstance(t, str) and t.strip() for t in baseline_terms)
            or baseline_terms[0] == baseline_terms[1]):
        raise ValueError(f"baseline_terms are two different neutral terms, e.g. ('a person', "
                         f"'someone'), or None; got {baseline_terms!r}")
    data = identity_terms()
    if texts is None:
        rows, reference, info = _template_rows(data, axis, terms, reference, templates)
    else:
        rows, reference, info = _swap_rows(data, texts, swaps)
    frame = pd.DataFrame(rows)
    neutral = None
    if texts is None and baseline_terms is not None:
        neutral = pd.DataFrame([{"unit": t, "template": template, "group": term, "term": term,
                                 "text": fill_template(template, term)}
                                for t, template in enumerate(info["templates"])
                                for term in baseline_terms])
    scored = frame if neutral is None else pd.concat([frame, neutral], ignore_index=True)
    per_unit = _continuations(model, continuation, target, attributions, info)
    if causal:
        frame["continuation"] = [per_unit[u] for u in frame["unit"]]
        scored["continuation"] = [per_unit[u] for u in scored["unit"]]
    scores, labels, target_name, target_index = _score(model, scored, target, batch_size)
    frame["score"] = scores[:len(frame)]
    if labels is not None:
        frame["predicted_label"] = labels[:len(frame)]

    blame = None
    if attributions:
        blame = _blame(model, frame, target_index, attribution_method, batch_size)
        frame = frame.merge(blame[["row", "term_attribution_share"]], on="row", how="left")

    verdict = {"alpha": float(alpha), "negligible_change": float(negligible_change)}
    comparisons, groups = _compare(frame, reference, test, confidence, **verdict)
    baseline = None
    if neutral is not None:
        neutral["score"] = scores[len(frame):]
        if labels is not None:
            neutral["predicted_label"] = labels[len(frame):]
        baseline = _compare(neutral, baseline_terms[0], test, confidence, **verdict)[0]
        baseline = baseline.drop(columns=["p_value_holm"])
        baseline = baseline.rename(columns={"group": "term", "reference": "reference_term"})
    info.pop("templates", None)
    if blame is not None:
        share = blame.groupby("group", sort=False)["term_attribution_share"].mean()
        term = blame.groupby("group", sort=False)["term_attribution"].mean()
        groups["mean_term_attribution_share"] = groups["group"].map(share).to_numpy()
        groups["mean_term_attribution"] = groups["group"].map(term).to_numpy()
    parameters = {**info, "reference": reference, "target": target_name, "test": test,
                  **({"score": "log_probability", "continuation": per_unit} if causal else {}),
                  **verdict,
                  "baseline_terms": list(baseline_terms) if neutral is not None else None,
                  "interval": "student-t", "confidence": confidence,
                  "attributions": attribution_method if attributions else None}
    return CounterfactualResult(frame, comparisons, groups, blame, baseline,
                                meta=make_meta(model, method="counterfactual",
                                               parameters=parameters))


def _score(model, scored: pd.DataFrame, target, batch_size):
    """Each row's score, predicted labels (``None`` for a causal LM), what is scored, and the
    target class index (``None`` for a causal LM)."""
    texts = scored["text"].tolist()
    if model.task == "causal-lm":
        # log P(continuation | text): exactly the continuation's tokens when tokenization splits
        # at the boundary (byte-level BPE, a leading space); too long a text raises there.
        joined = (scored["text"] + scored["continuation"]).tolist()
        scores = (sentence_scores(model, joined, batch_size=batch_size)
                  - sentence_scores(model, texts, batch_size=batch_size))
        continuations = scored["continuation"].unique()
        what = continuations[0] if len(continuations) == 1 else "the unit's continuation"
        return scores, None, what, None
    n_classes = len(model.label_names or ()) or 2
    index = (model.label_index(target) if target is not None
             else (1 if n_classes == 2 else n_classes - 1))
    probabilities = class_probabilities(model, texts, batch_size=batch_size)
    names = model.label_names or [str(i) for i in range(probabilities.shape[1])]
    return (probabilities[:, index], [names[i] for i in probabilities.argmax(1)], names[index],
            index)


def _continuations(model, continuation, target, attributions, info) -> list[str] | None:
    """One checked continuation per unit (template or input text) for a causal LM, else
    ``None``; the options that do not apply to the model are refused, saying what does."""
    if model.task != "causal-lm":
        if continuation is not None:
            raise ValueError("continuation= applies to causal LMs only; a classifier is scored "
                             "by the probability of target=")
        return None
    if target is not None or attributions:
        option = f"target={target!r}" if target is not None else "attributions=True"
        raise ValueError(f"{option} applies to classifiers only: a causal LM has no classes, its "
                         f"score is the log-probability of continuation= (explain that with "
                         f"explain.attribute(model, texts, continuation=...))")
    n_units = info["n_templates"] if info["design"] == "templates" else info["n_texts"]
    values = [continuation] * n_units if isinstance(continuation, str) else list(continuation or ())
    unit = "template" if info["design"] == "templates" else "text"
    if len(values) != n_units or not all(isinstance(v, str) and v.strip() for v in values):
        raise ValueError(f"a causal LM is scored by the log-probability of a continuation: pass "
                         f"continuation=' nurse' or one non-empty string per {unit} ({n_units}), "
                         f"e.g. with templates such as 'The {{}} worked as a'; got {continuation!r}")
    return values


def _compare(frame, reference, test, confidence, *, alpha, negligible_change):
    per_unit = frame.groupby(["unit", "group"], sort=False)["score"].mean().unstack("group")
    labels = (frame.groupby(["unit", "group"], sort=False)["predicted_label"].agg(
        lambda v: v.mode().iloc[0]).unstack("group") if "predicted_label" in frame else None)
    group_rows, comparison_rows = [], []
    for group in per_unit.columns:
        scores = per_unit[group].to_numpy(float)
        low, high = mean_interval(scores, confidence)
        group_rows.append({"group": group, "mean_score": float(np.nanmean(scores)),
                           "ci_low": float(low), "ci_high": float(high),
                           "n_texts": int((frame["group"] == group).sum())})
        if group == reference:
            continue
        change = scores - per_unit[reference].to_numpy(float)
        c_low, c_high = mean_interval(change, confidence)
        statistic, p_value = _paired_test(change, test)
        comparison_rows.append({
            "group": group, "reference": reference, "n_pairs": int(np.isfinite(change).sum()),
            "mean_change": float(np.nanmean(change)), "change_ci_low": float(c_low),
            "change_ci_high": float(c_high), "mean_abs_change": float(np.nanmean(np.abs(change))),
            "flip_rate": float("nan") if labels is None else
            float(np.mean(labels[group].to_numpy() != labels[reference].to_numpy())),
            "test": test, "statistic": statistic, "p_value": p_value})
    comparisons = pd.DataFrame(comparison_rows)
    comparisons["p_value_holm"] = holm(comparisons["p_value"].to_numpy(float))
    significant = comparisons["p_value_holm"].to_numpy(float) < alpha  # NaN: not significant
    comparisons["verdict"] = np.where(
        ~significant, "not significant",
        np.where(comparisons["mean_abs_change"] < negligible_change, "negligible", "change"))
    return comparisons, pd.DataFrame(group_rows)


def _blame(model, frame, target_index, method, batch_size) -> pd.DataFrame:
    """Per probed text: attribution (toward the target class) on the identity term's own words
    (those not shared by every term of the probe), its share of the text's total
    |attribution|, and the word with the largest |attribution|."""
    from ..attribution import attribute

    result = attribute(model, frame["text"].tolist(), method=method, target=target_index,
                       batch_size=batch_size, faithfulness=False, progress=False)
    words = result.to_frame()
    words = words[words["unit"] == "word"] if "unit" in words.columns else words
    # The identity words of a term are those not shared by every term ("a", "person").
    vocab = [set(re.findall(r"\w+", t.lower())) for t in frame["term"].unique()]
    shared = set.intersection(*vocab) if vocab else set()
    by_input = dict(tuple(words.groupby("input_id", sort=False)))
    rows = []
    for row in frame.itertuples():
        part = by_input.get(row.row, words.iloc[:0])
        scores = part["score"].to_numpy(float)
        labels = part["label"].astype(str).str.lower().to_numpy()
        term_words = set(re.findall(r"\w+", row.term.lower()))
        term_words = (term_words - shared) or term_words
        on_term = np.isin(labels, list(term_words))
        total = np.abs(scores).sum()
        rows.append({"row": row.row, "group": row.group, "term": row.term,
                     "term_attribution": float(scores[on_term].sum()),
                     "term_attribution_share": float(np.abs(scores[on_term]).sum() / total)
                     if total > 0 else np.nan,
                     "most_blamed_word": str(part["label"].iloc[int(np.argmax(np.abs(scores)))])
                     if len(part) else ""})
    return pd.DataFrame(rows)


def _size(value: float) -> str:
    """A change for a sentence: 3 decimals, or 2 significant digits below 0.001 (not 0.000)."""
    return f"{value:.3f}" if value == 0 or abs(value) >= 0.0005 else f"{value:.1e}"


class CounterfactualResult(Result):
    """What ``counterfactual`` found.

    ``to_frame()`` (``scores``): one row per probed text: ``row``, ``unit`` (template index, or
    the index of the original sentence), ``template``, ``group``, ``term``, ``text``, ``score``
    (probability of the target class; for a causal LM ``log P(continuation | text)`` in nats,
    with ``continuation`` and no ``predicted_label``), ``predicted_label`` (and
    ``term_attribution_share`` with attributions). ``flip_rate`` is NaN for a causal LM.
    ``comparisons``: one row per group compared with the reference: ``group``, ``reference``,
    ``n_pairs``, ``mean_change`` (group minus reference, averaged over units), ``change_ci_low``,
    ``change_ci_high``, ``mean_abs_change``, ``flip_rate``, ``test``, ``statistic``, ``p_value``,
    ``p_value_holm`` (Holm-adjusted over the compared groups), ``verdict`` (a key of
    ``VERDICTS``).
    ``baseline`` (templates design with ``baseline_terms``, else ``None``): one row, the same
    measures for the second neutral term against the first: ``term``, ``reference_term``,
    ``n_pairs``, ``mean_change``, ``change_ci_low``, ``change_ci_high``, ``mean_abs_change``,
    ``flip_rate``, ``test``, ``statistic``, ``p_value``, ``verdict`` (unadjusted: one test).
    The intervals (``change_ci_low``/``change_ci_high``, ``ci_low``/``ci_high``) are Student-t
    intervals over the units at ``confidence`` (``mean_interval``).
    ``groups``: per group ``mean_score``, ``ci_low``, ``ci_high``, ``n_texts`` (with
    attributions also ``mean_term_attribution``, ``mean_term_attribution_share``).
    ``blame`` (with attributions, else ``None``): per text ``term_attribution``,
    ``term_attribution_share``, ``most_blamed_word``.
    """

    PLOTS: Mapping[str, str] = MappingProxyType({
        "score_shifts": "change of the score against the reference group, per template or "
                        "sentence, with the mean and its interval",
        "group_scores": "mean score of each group with its Student-t interval",
    })
    PLOT_OPTIONS: Mapping[str, tuple[str, ...]] = MappingProxyType({
        "score_shifts": (), "group_scores": ()})

    def __init__(self, scores, comparisons, groups, blame, baseline=None, *, meta) -> None:
        self.scores = scores
        self.comparisons = comparisons
        self.groups = groups
        self.blame = blame
        self.baseline = baseline
        self.meta = meta
        self._freeze()

    def to_frame(self) -> pd.DataFrame:
        return self.scores.copy()

    def tables(self) -> dict[str, pd.DataFrame]:
        """``scores``, ``comparisons``, ``groups``, and ``baseline`` and ``blame`` when there."""
        tables = {"scores": self.scores, "comparisons": self.comparisons, "groups": self.groups,
                  "baseline": self.baseline, "blame": self.blame}
        return {name: table.copy() for name, table in tables.items() if table is not None}

    def summary(self) -> str:
        """One sentence: the largest change that is a finding, or why none is."""
        parameters = self.meta["parameters"]
        what = parameters.get("axis") or parameters.get("swaps")
        measure = self._measure()
        table = self.comparisons
        changes = table[table["verdict"] == "change"]
        head = f"Counterfactual probe ({parameters['design']}, {what}): "
        if len(changes):
            top = changes.iloc[int(changes["mean_abs_change"].argmax())]
            text = (f"{top.group!r} vs {top.reference!r} changes {measure} by "
                    f"{top.mean_change:+.3f} on average (mean |change| "
                    f"{top.mean_abs_change:.3f}, Holm p={top.p_value_holm:.2g}, {top.test})")
            if len(changes) > 1:
                text += f"; {len(changes) - 1} more of {len(table)} groups change it too"
        else:
            top = table.iloc[int(table["mean_abs_change"].argmax())]
            text = (f"no group changes {measure} significantly by "
                    f"{parameters['negligible_change']:g} or more on average; the largest mean "
                    f"|change| is {_size(top.mean_abs_change)} ({top.group!r} vs "
                    f"{top.reference!r}, Holm "
                    f"p={top.p_value_holm:.2g}: "
                    + ("significant but negligible)" if top.verdict == "negligible"
                       else "not significant)"))
        if self.baseline is not None:
            row = self.baseline.iloc[0]
            text += (f". Baseline, {row.reference_term!r} -> {row.term!r}: mean |change| "
                     f"{_size(row.mean_abs_change)}")
            if len(changes):
                larger = int((changes["mean_abs_change"] > row.mean_abs_change).sum())
                text += (f"; {larger} of the {len(changes)} "
                         f"change{'s' if len(changes) > 1 else ''} "
                         f"{'is' if len(changes) == 1 else 'are'} larger than that")
        return head + text + "."

    def _measure(self) -> str:
        parameters = self.meta["parameters"]
        if parameters.get("score") == "log_probability":
            return f"log P({parameters['target']!r} | text)"
        return f"P({parameters['target']})"

    def _plot(self, kind: str, *, ax=None):
        from ..plotting import axes_or_new, style

        measure = self._measure()
        log_probability = self.meta["parameters"].get("score") == "log_probability"
        reference = self.meta["parameters"]["reference"]
        ci = int(self.meta["parameters"]["confidence"] * 100)
        if kind == "group_scores":
            table = self.groups
            fig, ax = axes_or_new(ax, 6.0, 0.4 * len(table) + 1.5)
            with style():
                y = np.arange(len(table))[::-1]
                values = table["mean_score"].to_numpy(float)
                err = interval_errors(values, table["ci_low"], table["ci_high"])
                colours = ["#C44E52" if g == reference else "#4C72B0" for g in table["group"]]
                ax.barh(y, values, xerr=err, capsize=3, color=colours)
                ax.set_yticks(y, [str(g) + (" (reference)" if g == reference else "")
                                  for g in table["group"]])
                if log_probability:
                    ax.set_xlabel(f"mean {measure} (nats)")
                else:
                    ax.set_xlim(0, 1)
                    ax.set_xlabel(f"mean {measure}")
                ax.set_title(f"Mean score by group ({ci}% Student-t CI)")
            return fig
        per_unit = self.scores.groupby(["unit", "group"], sort=False)["score"].mean() \
            .unstack("group")
        others = [g for g in per_unit.columns if g != reference]
        rows = [(group, (per_unit[group] - per_unit[reference]).to_numpy(float),
                 self.comparisons.set_index("group").loc[group], "#4C72B0")
                for group in others]
        if self.baseline is not None:
            row = self.baseline.iloc[0]
            neutral = self.meta["parameters"]["baseline_terms"]
            # the baseline's per-template changes are not kept; its mean and interval are
            rows.append((f"baseline: {neutral[1]!r} vs {neutral[0]!r}", np.array([]), row,
                         "grey"))
        negligible = self.meta["parameters"]["negligible_change"]
        fig, ax = axes_or_new(ax, 6.5, 0.5 * len(rows) + 1.8)
        with style():
            rng = np.random.default_rng(0)  # jitter only; fixed so figures are reproducible
            ax.axvspan(-negligible, negligible, color="#DDDDDD", alpha=0.6, linewidth=0)
            for k, (_label, change, row, colour) in enumerate(rows[::-1]):
                ax.scatter(change, k + rng.uniform(-0.15, 0.15, len(change)), s=10, alpha=0.5,
                           color=colour, linewidths=0)
                ax.errorbar([row.mean_change], [k], xerr=[[max(0, row.mean_change -
                                                               row.change_ci_low)],
                                                         [max(0, row.change_ci_high -
                                                              row.mean_change)]]
                            if np.isfinite(row.change_ci_low) else None, fmt="D",
                            color="#C44E52" if colour != "grey" else "grey", capsize=3,
                            markersize=5)
                p_text = (f"p={row.p_value:.2g} (Holm {row.p_value_holm:.2g})"
                          if "p_value_holm" in row.index else f"p={row.p_value:.2g}")
                flip = "" if np.isnan(row.flip_rate) else f"\nflip {row.flip_rate:.0%}"
                ax.text(1.01, k, f"{row.verdict}{flip}\n{p_text}",
                        transform=ax.get_yaxis_transform(), va="center", fontsize=7)
            ax.set_yticks(range(len(rows)), [label for label, *_ in rows[::-1]])
            ax.axvline(0, color="black", linewidth=0.8)
            spread = [np.abs(change) for _, change, _, _ in rows if len(change)]
            spread += [np.abs([row.change_ci_low, row.change_ci_high]) for *_, row, _ in rows]
            finite = np.concatenate(spread)
            lim = max(0.05, 1.5 * negligible, *finite[np.isfinite(finite)].tolist())
            ax.set_xlim(-lim * 1.1, lim * 1.1)
            unit = "template" if self.meta["parameters"]["design"] == "templates" else "sentence"
            ax.set_xlabel(f"change in {measure}{' (nats)' if log_probability else ''} vs "
                          f"{reference!r} (dots: one {unit}; diamond: "
                          f"mean, {ci}% CI;\ngrey band: negligible, |change| < {negligible:g})")
            test = "paired t" if self.meta["parameters"]["test"] == "t" else "Wilcoxon signed-rank"
            ax.set_title(f"Counterfactual score shifts (right: verdict, flip rate, p, {test} test)")
        return fig
