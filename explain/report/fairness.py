"""The report's fairness analyses, all in the "Bias and fairness" section: group metrics of
the model and of recorded decisions, counterfactual probes, representation probes and SEAT
association tests."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..fairness import SEAT_TEMPLATES, audit, counterfactual, representation_probe, seat
from ..text import read_texts
from . import findings
from .protocol import Analysis, Context
from .sections import Section

__all__ = ["ASSOCIATION", "COUNTERFACTUAL", "FAIRNESS", "REPRESENTATION"]

SECTION = Section("fairness", "Bias and fairness", caveat=(
    "Group metrics are only as good as the group labels (the caveats of each dataset below say "
    "where its labels come from), and small groups have wide intervals (read the interval, not "
    "the point). Common fairness criteria (calibration within groups, equal error rates, "
    "demographic parity) cannot all hold when base rates differ (Kleinberg et al., 2016; "
    "Chouldechova, 2017): a report can show which ones fail, not which one to choose. "
    "Association tests (WEAT/SEAT) measure associations in representations, which do not "
    "reliably predict biased behaviour downstream (May et al., 2019; Goldfarb-Tarrant et al., "
    "2021); counterfactual probes depend on their word lists and templates."))

#: Groups smaller than this are merged before a representation probe (cross-validation folds
#: need members of every class).
PROBE_MIN_GROUP = 10
#: Identity axes of the counterfactual probes of text classifiers.
COUNTERFACTUAL_AXES = ("gender", "race_names")


def _add_audit(report, result, *, part: str, who: str, title: str,
               caption: str) -> None:
    parameters = result.meta["parameters"]
    confidence = round(parameters["confidence"] * 100)
    for feature in result.sensitive_features:
        # the figures of the audit CLI, per sensitive feature (intersections included)
        kinds = [k for k in result.applicable_plots(sensitive_feature=feature)
                 if k != "disparities"]
        extra = []
        if "calibration" in kinds:
            extra.append(f"calibration: the observed rate of '{result.class_labels[0]}' "
                         f"against the mean score in each of {parameters['n_bins']} score "
                         f"bins, one line per group")
        if "thresholds" in kinds:
            extra.append("thresholds: selection rate, true and false positive rate of each "
                         "group as the decision threshold moves")
        by_group = result.by_group
        report.add(result, section="fairness", title=f"{title}, by {feature}", plots=kinds,
                   plot_options={"sensitive_feature": feature},
                   data=by_group[by_group["sensitive_feature"] == feature]
                   .reset_index(drop=True),
                   caption=f"{caption} Groups of '{feature}'. Bars are fairlearn estimates; "
                           f"lines are {confidence}% Wilson score intervals (rates) and "
                           f"Newcombe intervals (contrasts with the reference group, "
                           f"'{parameters['reference_groups'][feature]}')"
                           + (f"; {'; '.join(extra)}." if extra else "."))
    report.add(result.disparities, section="fairness", title=f"{title}: disparities",
               caption="Difference between the groups with the largest and smallest rate "
                       "(fairlearn's between_groups), a permutation test of 'no disparity' "
                       "with its Holm-adjusted p-value over the audit, and the conclusion "
                       f"(negligible: significant but under "
                       f"{parameters['negligible_difference']}). A max - min difference has "
                       "no valid interval; the signed contrasts below carry the intervals.")
    disparities = report.last_id
    report.add(result.contrasts, section="fairness", title=f"{title}: contrasts",
               caption=f"Each group minus the reference group, per rate, with "
                       f"{round(parameters['confidence'] * 100)}% Newcombe intervals.")
    for sentence in findings.audit_findings(
            who, result.disparities, result.contrasts, alpha=parameters["alpha"],
            negligible=parameters["negligible_difference"],
            confidence=parameters["confidence"]):
        report.add_finding(sentence, sources=[disparities, report.last_id], kind="audit",
                           part=part)


def _fairness_applies(context: Context) -> str | None:
    return None if context.sensitive else "group metrics need a sensitive column (--sensitive)"


def _run_fairness(context: Context) -> None:
    report, part, loaded, data = context.report, context.part, context.model, context.data
    label, sensitive, seed = context.label, list(context.sensitive), context.seed
    is_text, text_column = context.is_text, context.text_column
    if context.is_classifier:
        result = audit(loaded, data, sensitive_features=sensitive, label=label, seed=seed,
                       text=text_column if is_text else None)
        _add_audit(report, result, part=part, who=f"{part} model",
                   title=f"{part}: group metrics of the model",
                   caption="Per-group rates of the model's decisions.")
    else:
        context.not_run("the model is not a classifier, so it has no decisions to audit",
                        section="fairness")
    for column in context.decisions:
        result = audit(data=data, prediction=column, sensitive_features=sensitive,
                       label=label, seed=seed)
        _add_audit(report, result, part=part, who=f"{part} '{column}' decisions",
                   title=f"{part}: group metrics of '{column}'",
                   caption="The same metrics for decisions recorded in the data (not made "
                           "by the model).")


def _counterfactual_applies(context: Context) -> str | None:
    if not (context.is_text and context.model.task == "sequence-classification"):
        return "counterfactual probes need a text classifier"
    return None


def _run_counterfactual(context: Context) -> None:
    report, part, loaded = context.report, context.part, context.model
    for axis in COUNTERFACTUAL_AXES:
        result = counterfactual(loaded, axis=axis)  # exact intervals: no seed
        parameters = result.meta["parameters"]
        reference = parameters["reference"]
        report.add(result, section="fairness",
                   title=f"{part}: counterfactual probe, {axis.replace('_', ' ')}",
                   plots=("group_scores", "score_shifts"),
                   caption=f"The same template sentences with only the identity term "
                           f"changed; scores are the probability of "
                           f"'{parameters['target']}'. Shifts are against '{reference}'.")
        report.add(result.comparisons, section="fairness",
                   title=f"{part}: {axis.replace('_', ' ')} groups against '{reference}'",
                   caption="Mean change of the score with its interval, the share of pairs "
                           "whose predicted class flips, a paired test with its "
                           "Holm-adjusted p-value over the compared groups, and the verdict "
                           f"(negligible: significant but a mean |change| under "
                           f"{parameters['negligible_change']}).")
        sources = [report.last_id]
        if result.baseline is not None:
            report.add(result.baseline, section="fairness",
                       title=f"{part}: {axis.replace('_', ' ')}, neutral-term baseline",
                       caption="The same measures for a swap between two neutral terms: "
                               "the change that any word swap makes.")
            sources.append(report.last_id)
        report.add_finding(findings.counterfactual_finding(
            part, axis, result.comparisons, target=parameters["target"],
            alpha=parameters["alpha"], negligible=parameters["negligible_change"],
            confidence=parameters["confidence"], baseline=result.baseline),
            sources=sources, kind="counterfactual", part=part)


def _representation_applies(context: Context) -> str | None:
    return None if context.sensitive else \
        "representation probes need a sensitive column (--sensitive)"


def _run_representation(context: Context) -> None:
    report, part, loaded, data = context.report, context.part, context.model, context.data
    text_column, sensitive, seed = context.text_column, context.sensitive, context.seed
    inputs = read_texts(data, text_column) if loaded.is_text else data
    for column in sensitive:
        missing = np.flatnonzero(data[column].isna().to_numpy()).tolist()
        if missing:  # astype(str) would make them a group called 'nan'
            raise ValueError(f"the sensitive column {column!r} is missing in "
                             f"{len(missing)} row(s) (positions counting from 0: "
                             f"{', '.join(map(str, missing[:10]))}"
                             f"{' and more' if len(missing) > 10 else ''}); drop those "
                             f"rows or fill them with the group they belong to")
        values = data[column].astype(str)
        counts = values.value_counts()
        small = sorted(counts[counts < PROBE_MIN_GROUP].index)
        other = f"other (groups under {PROBE_MIN_GROUP})"
        merged = values.where(~values.isin(small), other)
        keep = np.ones(len(merged), dtype=bool)
        note = (f" Groups with fewer than {PROBE_MIN_GROUP} rows ({', '.join(small)}) are "
                f"merged." if small else "")
        if small and (merged == other).sum() < PROBE_MIN_GROUP:
            keep = (merged != other).to_numpy()  # still too few: leave those rows out
            note = (f" Rows of groups with fewer than {PROBE_MIN_GROUP} rows "
                    f"({', '.join(small)}: {int((~keep).sum())} rows) are left out.")
        if merged[keep].nunique() < 2:
            continue
        rows = np.flatnonzero(keep).tolist()
        probe_inputs = [inputs[i] for i in rows] if loaded.is_text else \
            inputs.iloc[rows].reset_index(drop=True)
        values = pd.Series(merged[keep].tolist(), name=column)  # named: is it an input?
        result = representation_probe(loaded, probe_inputs, values, seed=seed)
        table = result.to_frame()
        verdict = findings.probe_verdict(column, table)
        report.add(result, section="fairness",
                   title=f"{part}: can the network's layers tell {column}?",
                   caption=f"Held-out accuracy of a linear probe predicting '{column}' from "
                           f"each layer, against a probe on the raw inputs, a "
                           f"shuffled-label control and the majority baseline. Here: "
                           f"{verdict}" + note)
        report.add_finding(f"{part}: {verdict}", sources=report.last_id, kind="probe",
                           part=part)


def _association_applies(context: Context) -> str | None:
    if not (context.is_text and context.model.is_huggingface):
        return "SEAT association tests need a Hugging Face text encoder"
    if context.model.family.encoder_decoder:
        return "SEAT association tests read the sentence encodings of an encoder or LM, not of " \
               "an encoder-decoder"
    return None


def _run_association(context: Context) -> None:
    report, part, loaded, seed = context.report, context.part, context.model, context.seed
    # two templates keep the demo inside its time budget (about 800 sentences to encode)
    templates = SEAT_TEMPLATES[:2]
    result = seat(loaded, seed=seed, templates=templates, n_permutations=10_000)
    report.add(result, section="fairness", title=f"{part}: SEAT association tests on the "
               "encoder", caption=f"Effect size d of each test with its permutation p-value "
               f"(Holm-adjusted over the tests), next to the effect of the original human "
               f"IAT (Caliskan et al., 2017, Table 1). Sentences: each word of a test put "
               f"into the templates "
               f"{' and '.join(repr(t.replace('{}', '[word]')) for t in templates)} "
               f"(e.g. {templates[0].format('love')!r}); mean-pooled last layer of the "
               f"encoder.")
    report.add_finding(findings.seat_finding(part, result.to_frame()),
                       sources=report.last_id, kind="seat", part=part)



FAIRNESS = Analysis(
    "fairness", "group metrics with Wilson intervals, permutation tests of disparities and "
                "contrasts with Newcombe intervals (needs a sensitive column)",
    SECTION, _run_fairness, _fairness_applies)
COUNTERFACTUAL = Analysis(
    "counterfactual", "counterfactual probes: swap identity terms, measure the change (text "
                      "classifiers)", SECTION, _run_counterfactual, _counterfactual_applies)
REPRESENTATION = Analysis(
    "representation", "linear probes: where in the network each sensitive attribute can be "
                      "read out (needs a sensitive column)",
    SECTION, _run_representation, _representation_applies)
ASSOCIATION = Analysis(
    "association", "SEAT association tests on the model's encoder (transformer text models)",
    SECTION, _run_association, _association_applies)
