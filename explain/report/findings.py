"""The summary's cards and findings, each worded from the table its section shows.

Every function here takes the table that the report also writes to ``data/`` (or the rows it
is computed from) and returns the sentence, so a number in the summary is a number of that
table, and two sentences about the same thing cannot disagree: the share of explanations that
beat a random ranking comes from the explanations table, a method's standing against random
from the scorecard, an effect's size and significance from the test's own row.

Conventions: a finding names the method and the count it rests on; findings about a word or
feature need ``MIN_COUNT`` occurrences and say so; p-values are Holm-adjusted where several
tests are read together; a significant effect smaller than the analysis's own negligible size
(``negligible_difference`` of the audit, ``negligible_change`` of the counterfactual probe, both
quoted in the sentence) or than ``NEGLIGIBLE_EFFECT_SIZE`` (Cohen's d) is called negligible.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import pandas as pd

from ..attribution.methods import method_title
from ..attribution.result import importance_table

__all__ = ["ALPHA", "MIN_COUNT", "NEGLIGIBLE_EFFECT_SIZE", "audit_findings",
           "beats_random_card", "counterfactual_finding", "importance_finding",
           "probe_verdict", "scorecard_card", "scorecard_finding",
           "seat_finding", "whitespace_words", "word_importance"]

#: Significance level of the SEAT finding (the audit's and the counterfactual probe's findings
#: quote the ``alpha`` those analyses used).
ALPHA = 0.05
#: A finding about a word, a feature or a comparison needs at least this many occurrences
#: (or pairs): a mean of three scores says little about the word.
MIN_COUNT = 10
#: Effect sizes (Cohen's d) smaller than this in absolute value are negligible (Cohen's "small"
#: starts at 0.2).
NEGLIGIBLE_EFFECT_SIZE = 0.2


def _words(name: str) -> str:
    """A measure's or metric's id in words: ``"demographic_parity"`` -> ``"demographic
    parity"``."""
    return str(name).replace("_", " ")


def _percent(value: float) -> str:
    return f"{100 * value:.1f}%"


def _p(value: float) -> str:
    return f"{value:.2g}"


# ------------------------------------------------------------------------ attributions


def _definition(table: pd.DataFrame) -> str:
    """`` (aopc definition)``: which comprehensiveness, when the table says."""
    if "faithfulness_definition" not in table or table.empty:
        return ""
    return f" ({', '.join(dict.fromkeys(map(str, table['faithfulness_definition'])))} definition)"


def beats_random_card(explanations: pd.DataFrame, method: str) -> tuple[str, str]:
    """``(value, label)`` of the card: how many of these explanations have a higher
    comprehensiveness than the random ranking measured on the same input."""
    measured = explanations.dropna(subset=["comprehensiveness", "random_comprehensiveness"])
    beats = int((measured["comprehensiveness"] > measured["random_comprehensiveness"]).sum())
    return (f"{beats} of {len(measured)}",
            f"{method_title(method)} explanations of the selected examples that beat a random "
            f"ranking on comprehensiveness{_definition(measured)}")


def _scorecard_rows(table: pd.DataFrame):
    """``(row, explanations beating random, explanations, better than random on average)``."""
    for row in table.itertuples(index=False):
        n = int(row.n_inputs)
        beats = int(row.n_beats_random) if hasattr(row, "n_beats_random") \
            else round(float(row.beats_random) * n)
        yield row, beats, n, float(row.comprehensiveness) > float(row.random_comprehensiveness)


def scorecard_card(table: pd.DataFrame) -> tuple[str, str]:
    """``(value, label)``: how many of the scorecard's methods rank units worse than random on
    average (mean comprehensiveness at most the random ranking's), and which."""
    worse = [method_title(row.method) for row, _, _, better in _scorecard_rows(table)
             if not better]
    n = int(table["n_inputs"].max())
    return (f"{len(worse)} of {len(table)}",
            f"scorecard methods no better than a random ranking on average ({n} examples)"
            + (f": {', '.join(worse)}" if worse else ""))


def scorecard_finding(part: str, table: pd.DataFrame) -> str:
    """Each method's mean comprehensiveness against the random ranking's, split into the
    methods better and those no better than random, with how many explanations beat it."""
    better, worse = [], []
    for row, k, n, is_better in _scorecard_rows(table):
        text = (f"{method_title(row.method)} {row.comprehensiveness:.3f} vs "
                f"{row.random_comprehensiveness:.3f} ({k} of {n} explanations beat random)")
        (better if is_better else worse).append(text)
    sentence = (f"{part}: on the scorecard's {int(table['n_inputs'].max())} examples, mean "
                f"comprehensiveness{_definition(table)} against a random ranking's")
    if better:
        sentence += ": better than random: " + "; ".join(better)
    if worse:
        sentence += (". " if better else ": ") + "No better than a random ranking on average: " \
            + "; ".join(worse)
    return sentence + "."


_CORE = re.compile(r"[^\W_](?:.*[^\W_])?", re.S)  # from the first to the last letter or digit


def whitespace_words(units: pd.DataFrame, texts: Sequence[str]) -> pd.DataFrame:
    """Word attributions folded into whitespace-separated words.

    Tokenizers split ``doesn't`` into ``doesn``, ``'`` and ``t``, and ``film.`` into ``film``
    and ``.``; averaged over a dataset, ``t`` then reads like a word. Here the units of one
    text (``units``: ``AttributionResult.to_frame(level="word")``, with ``input_id``,
    ``predicted_label``, ``start``, ``end``, ``score``) that touch without whitespace between
    them form one word; leading and trailing punctuation is cut off (its units are left out of
    the score), so ``doesn't`` stays one word, and a word of punctuation only is dropped.
    ``texts``: the explained texts, by ``input_id``.

    Returns one row per word occurrence: ``input_id``, ``predicted_label``, ``word``
    (lowercased), ``start``, ``end`` (characters of the text), ``score`` (sum of its units).
    """
    rows = []
    for input_id, group in units.groupby("input_id", sort=True):
        text = texts[int(input_id)]
        group = group.sort_values("start", kind="stable")
        predicted = group["predicted_label"].iloc[0]
        spans: list[list] = []  # [start, end, [(start, end, score), ...]]
        for start, end, score in zip(group["start"], group["end"], group["score"], strict=True):
            start, end = int(start), int(end)
            if spans and text[spans[-1][1]:start] == "" and start >= spans[-1][1]:
                spans[-1][1] = end
                spans[-1][2].append((start, end, float(score)))
            else:
                spans.append([start, end, [(start, end, float(score))]])
        for start, end, parts in spans:
            core = _CORE.search(text[start:end])
            if core is None:
                continue
            low, high = start + core.start(), start + core.end()
            score = sum(s for a, b, s in parts if a < high and b > low)
            rows.append({"input_id": int(input_id), "predicted_label": predicted,
                         "word": text[low:high].lower(), "start": low, "end": high,
                         "score": score})
    return pd.DataFrame(rows, columns=["input_id", "predicted_label", "word", "start", "end",
                                       "score"])


def word_importance(words: pd.DataFrame, *, label: str = "word", min_count: int = MIN_COUNT,
                    confidence: float = 0.95) -> pd.DataFrame:
    """Mean signed score of each word (``label`` column of ``words``) per predicted label,
    over its occurrences, for words seen at least ``min_count`` times: the columns, interval
    (Student-t of the mean at ``confidence``) and order of
    ``AttributionResult.global_importance``, on whitespace words."""
    return importance_table(words, label=label, min_count=min_count, confidence=confidence)


def importance_title(unit: str, method: str, *, min_count: int = MIN_COUNT,
                     top_k: int = 10, scope: str = "") -> str:
    """The title of the global-importance chart (``importance_figure``): its bars are the signed
    mean score with its 95% Student-t interval, of the ``top_k`` units of each predicted class
    ranked by mean |score|. ``scope``: what was explained (e.g. ``"all 5,000 rows"``)."""
    return (f"Global importance{f' over {scope}' if scope else ''}, {method_title(method)}\n"
            f"top {top_k} {unit}s per predicted class by mean |score| (seen at least "
            f"{min_count} times)\nbars: signed mean score with its 95% Student-t interval")


def shown_units(table: pd.DataFrame, top_k: int = 10) -> int:
    """How many units per predicted class the global-importance chart shows: ``top_k``, or
    fewer when no class has that many."""
    counts = table.groupby("predicted_label").size()
    return int(min(top_k, counts.max())) if len(counts) else 0


def importance_finding(part: str, table: pd.DataFrame, *, n_rows: int, unit: str,
                       method: str, min_count: int = MIN_COUNT) -> str:
    """The unit with the largest mean |attribution| per predicted label (``table``: the
    output of ``word_importance`` or ``global_importance``, already limited to units seen
    ``min_count`` times), with its interval and count."""
    head = (f"{part}: over {n_rows:,} rows explained with {method_title(method)}, among {unit}s "
            f"seen at least {min_count} times")
    if table.empty:
        return f"{head}, there is none: no {unit} finding."
    clauses = []
    for predicted, group in table.groupby("predicted_label", sort=True):
        top = group.sort_values("mean_abs_score", ascending=False, kind="stable").iloc[0]
        clause = (f"'{top['label']}' for predictions of '{predicted}' (mean "
                  f"{top['mean_score']:+.3f}, 95% t-interval [{top['ci_low']:+.3f}, "
                  f"{top['ci_high']:+.3f}], {int(top['count'])} occurrences")
        if top["ci_low"] <= 0 <= top["ci_high"]:
            clause += "; the interval includes 0"
        clauses.append(clause + ")")
    return f"{head}, the largest mean |attribution| is " + "; ".join(clauses) + "."


def run_faithfulness_finding(part: str, table: pd.DataFrame, *, method: str, unit: str) -> str:
    """What ``aggregate.faithfulness`` says of one method over a run: the explanations'
    comprehensiveness against the random ranking's, their paired gain and its interval (better
    than random when the interval is above 0, worse when below, else indistinguishable), the
    share that beat random, and for an integrating method the steps and completeness error."""
    rows = table.set_index("measure")
    name = method_title(method)
    sentences = []
    if {"comprehensiveness", "random_comprehensiveness", "comprehensiveness_gain"} <= \
            set(rows.index):
        c, r, g = (rows.loc[m] for m in ("comprehensiveness", "random_comprehensiveness",
                                         "comprehensiveness_gain"))
        verdict = ("better than a random ranking" if g["ci_low"] > 0 else
                   "worse than a random ranking" if g["ci_high"] < 0 else
                   "not distinguishable from a random ranking")
        definition = f", {rows['definition'].dropna().iloc[0]} definition" \
            if rows["definition"].notna().any() else ""
        sentence = (f"{part}: over {int(c['count']):,} explanations ({name}{definition}), "
                    f"removing the top-ranked {unit}s lowered the explained output by "
                    f"{c['mean']:.3f} on average (95% t-interval [{c['ci_low']:.3f}, "
                    f"{c['ci_high']:.3f}]) against {r['mean']:.3f} for a random ranking of the "
                    f"same inputs: a gain of {g['mean']:+.3f} ([{g['ci_low']:+.3f}, "
                    f"{g['ci_high']:+.3f}]), {verdict}")
        if "beats_random" in rows.index:
            b = rows.loc["beats_random"]
            sentence += (f"; {_percent(b['mean'])} of the explanations beat the random "
                         f"ranking (95% Wilson interval {_percent(b['ci_low'])} to "
                         f"{_percent(b['ci_high'])})")
        sentences.append(sentence + ".")
    if {"n_steps", "relative_delta"} <= set(rows.index):
        steps, error = rows.loc["n_steps"], rows.loc["relative_delta"]
        sentences.append(f"{name[:1].upper()}{name[1:]} evaluated {steps['mean']:.1f} gradients per "
                         f"explanation on average; its mean completeness error is "
                         f"{_percent(error['mean'])} of |f(x) - f(baseline)|.")
    return " ".join(sentences) or (f"{part}: the {name} run measured no faithfulness "
                                   f"(faithfulness off) and no completeness error.")


# ------------------------------------------------------------------------ fairness


_VERDICTS = {"change": "a change",
             "negligible": "significant but negligible (mean |change| under {negligible})",
             "not significant": "not significant"}


def counterfactual_finding(part: str, axis: str, comparisons: pd.DataFrame, *, target: str,
                           alpha: float, negligible: float, confidence: float = 0.95,
                           baseline: pd.DataFrame | None = None) -> str:
    """How many groups change the score against the reference (the probe's own ``verdict``:
    Holm-adjusted p < ``alpha`` and mean |change| at least ``negligible``), the group with the
    largest mean change with its interval, test, adjusted p-value and verdict, and the change
    a neutral swap makes (``baseline``, when the probe measured one)."""
    changes = int((comparisons["verdict"] == "change").sum())
    worst = comparisons.iloc[int(comparisons["mean_change"].abs().to_numpy().argmax())]
    n = int(worst["n_pairs"])
    level = round(confidence * 100)
    verdict = _VERDICTS.get(worst["verdict"], str(worst["verdict"])).format(negligible=negligible)
    if n < MIN_COUNT:
        verdict += f", on too few pairs (fewer than {MIN_COUNT}) to conclude"
    sentence = (f"{part}: swapping {axis.replace('_', ' ')} terms in template sentences changes "
                f"the probability of '{target}' for {changes} of {len(comparisons)} groups "
                f"against '{worst['reference']}' (Holm-adjusted p < {alpha} and mean |change| "
                f"at least {negligible}). The largest mean change is for '{worst['group']}': "
                f"{worst['mean_change']:+.3f} ({level}% CI [{worst['change_ci_low']:+.3f}, "
                f"{worst['change_ci_high']:+.3f}], {worst['test']} test over {n} pairs, "
                f"Holm-adjusted p = {_p(worst['p_value_holm'])}): {verdict}; the predicted "
                f"class flips for {_percent(float(worst['flip_rate']))} of those pairs.")
    if baseline is not None and len(baseline):
        row = baseline.iloc[0]
        size = abs(float(row["mean_change"]))
        found = comparisons[comparisons["verdict"] == "change"]
        beyond = int((found["mean_change"].abs() > size).sum())
        sentence += (f" A neutral swap ('{row['reference_term']}' to '{row['term']}') changes "
                     f"it by {row['mean_change']:+.3f} ({level}% CI [{row['change_ci_low']:+.3f}"
                     f", {row['change_ci_high']:+.3f}])")
        if len(found):
            verb = "is" if beyond == 1 else "are"
            sentence += (f": {beyond} of the {len(found)} changes {verb} larger than that"
                         + ("; the others are no larger than swapping neutral words" if
                            beyond < len(found) else ""))
        sentence += "."
    return sentence


def seat_finding(part: str, table: pd.DataFrame) -> str:
    """SEAT tests with a medium or larger effect after Holm's correction over the tests, and
    those significant but negligible."""
    measured = table[table["p_value"].notna()]
    p = measured["p_value_holm"].to_numpy(float)
    d = measured["effect_size"].abs().to_numpy(float)
    significant = p < ALPHA
    medium = int((significant & (d >= 0.5)).sum())
    negligible = int((significant & (d < NEGLIGIBLE_EFFECT_SIZE)).sum())
    sentence = (f"{part}: {medium} of {len(measured)} SEAT tests on the model's encoder show a "
                f"medium or larger association (|d| >= 0.5, Holm-adjusted p < {ALPHA})")
    if negligible:
        sentence += (f"; {negligible} more are significant but negligible (|d| < "
                     f"{NEGLIGIBLE_EFFECT_SIZE})")
    if len(measured) < len(table):
        sentence += f"; {len(table) - len(measured)} could not be computed"
    return sentence + "."


def probe_verdict(column: str, table: pd.DataFrame) -> str:
    """What the probe of ``column`` shows, worded from its best layer and baselines: an input
    of the model is recovered trivially; a layer is said to encode the attribute only when its
    accuracy interval lies above the raw-input probe's interval and above the control and the
    majority baseline."""
    best = table.iloc[int(table["accuracy"].to_numpy().argmax())]
    accuracy = f"accuracy {best['accuracy']:.3f}"
    if "accuracy_ci_low" in best:
        accuracy += f", 95% CI [{best['accuracy_ci_low']:.3f}, {best['accuracy_ci_high']:.3f}]"
    low = float(best.get("accuracy_ci_low", best["accuracy"]))
    control = float(best.get("control_accuracy", float("nan")))
    majority = float(best["majority_baseline"])
    baselines = f"majority baseline {majority:.3f}"
    if math.isfinite(control):
        baselines = f"shuffled-label control {control:.3f}, " + baselines
    has_input = "input_accuracy" in best
    if has_input:
        baselines = (f"raw-input probe {best['input_accuracy']:.3f} (95% CI "
                     f"[{best['input_ci_low']:.3f}, {best['input_ci_high']:.3f}]), " + baselines)
    layer = f"layer {best['layer']} ({accuracy}; {baselines})"
    if str(best.get("is_model_input")) == "True":  # True, numpy True or "True"; not None
        return (f"'{column}' is an input of the model, so reading it out of the layers is "
                f"trivial: best {layer}. This shows where the input survives, not that the "
                f"network inferred it.")
    chance = max(majority, control) if math.isfinite(control) else majority
    if low <= chance:
        return f"no layer reads '{column}' clearly above chance: best {layer}."
    if not has_input:
        return (f"'{column}' can be read out of {layer}; without a raw-input baseline this "
                f"does not show that the layer encodes more of it than its inputs hold.")
    if low <= float(best["input_ci_high"]):
        return (f"'{column}' can be read out of {layer} above chance, but not clearly better "
                f"than from the raw inputs: the layers carry what the inputs already hold.")
    return (f"{layer} encodes '{column}' beyond what the raw inputs reveal (its interval lies "
            f"above the raw-input probe's).")


#: The per-group rate(s) behind each disparity measure of ``explain.audit``.
_MEASURE_METRICS = {"demographic_parity": ("selection_rate",),
                    "equalized_odds": ("true_positive_rate", "false_positive_rate"),
                    "equal_opportunity": ("true_positive_rate",),
                    "predictive_parity": ("precision",), "accuracy_parity": ("accuracy",)}


def audit_findings(who: str, disparities: pd.DataFrame, contrasts: pd.DataFrame, *,
                   alpha: float, negligible: float, confidence: float) -> list[str]:
    """One sentence per sensitive feature (intersections left out) of an audit, from its
    ``disparities`` (difference, permutation test, Holm-adjusted p-value, conclusion) and
    ``contrasts`` tables (each group minus the reference group, with its interval: the valid
    interval of a disparity; a max - min difference has none). ``alpha``,
    ``negligible``, ``confidence``: the audit's own parameters, so the sentence and the
    audit's ``conclusion`` column agree."""
    sentences = []
    for feature, rows in disparities.groupby("sensitive_feature", sort=False):
        if " & " in str(feature):
            continue
        sentences.append(_disparity_sentence(who, str(feature), rows,
                                             contrasts[contrasts["sensitive_feature"] == feature],
                                             alpha=alpha, negligible=negligible,
                                             confidence=confidence))
    return sentences


def _largest_contrast(contrasts: pd.DataFrame, measure: str, class_label) -> pd.Series | None:
    """The contrast with the reference group of largest |difference| for ``measure``'s rates,
    among groups of at least the minimum size when there are any (a four-row group's contrast
    is mostly noise)."""
    rows = contrasts[contrasts["metric"].isin(_MEASURE_METRICS.get(measure, ()))
                     & (contrasts["class_label"] == class_label)]
    rows = rows[rows["difference"].notna()]
    if "small_group" in rows and (~rows["small_group"].astype(bool)).any():
        rows = rows[~rows["small_group"].astype(bool)]
    if rows.empty:
        return None
    return rows.iloc[int(rows["difference"].abs().to_numpy().argmax())]


def _disparity_sentence(who: str, feature: str, rows: pd.DataFrame, contrasts: pd.DataFrame, *,
                        alpha: float, negligible: float, confidence: float) -> str:
    level = round(confidence * 100)
    found, small, plain, untested = [], [], [], []
    for row in rows.itertuples(index=False):
        name = _words(row.measure)
        if row.conclusion == "not tested":
            untested.append(name)
            continue
        text = f"{name} {row.difference:.3f} (p = {_p(row.p_value_holm)}"
        if row.conclusion == "disparity":
            text = (f"{name} {row.difference:.3f} ({row.high_group} vs {row.low_group}, "
                    f"p = {_p(row.p_value_holm)}")
            contrast = _largest_contrast(contrasts, row.measure, row.class_label)
            if contrast is not None:
                text += (f"; {contrast['group']}"
                         + (" (a small group)" if bool(contrast.get("small_group", False))
                            else "")
                         + f" minus {contrast['reference_group']} "
                         f"{_words(contrast['metric'])} {contrast['difference']:+.3f}, "
                         f"{level}% CI [{contrast['ci_low']:+.3f}, {contrast['ci_high']:+.3f}]")
            found.append(text + ")")
        elif row.conclusion == "negligible":
            small.append(text + ")")
        else:
            plain.append(text + ")")
    groups = int(rows["n_groups"].max())
    small_groups = sorted({str(g) for g in rows.get("small_groups", pd.Series(dtype=object))
                           if isinstance(g, str) and g})
    small_note = (f"; under the minimum size: {'; '.join(small_groups)} rows" if small_groups
                  else "")
    sentence = (f"{who}, by {feature} ({groups} groups{small_note}): a disparity in "
                f"{len(found)} of {len(rows)} measures (permutation test, Holm-adjusted "
                f"p < {alpha}, difference at least {negligible})")
    sentence += (": " + "; ".join(found)) if found else ""
    if small:
        sentence += f". Significant but negligible (under {negligible}): " + "; ".join(small)
    if plain:
        sentence += ". No evidence of a disparity: " + "; ".join(plain)
    if untested:
        sentence += ". Not tested: " + ", ".join(untested)
    return sentence + "."
