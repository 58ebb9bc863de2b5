"""The report's attribution analysis: attributions of the selected examples with
plain-language summaries, global importance and the explanation scorecard (classifiers)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..attribution import attribute
from ..attribution.figures import importance_figure
from ..attribution.scorecard import scorecard
from ..plotting import new_figure
from ..text import read_texts
from . import findings
from .protocol import Analysis, Context
from .sections import Section

__all__ = ["ATTRIBUTIONS"]

SECTION = Section("attributions", "Attributions", caveat=(
    "Attributions depend on the method and on its baseline (integrated gradients and DeepLift "
    "measure change relative to a reference input; the choice of reference is a modelling "
    "decision). Faithfulness scores (deletion, comprehensiveness, sufficiency) remove features, "
    "which produces inputs unlike the training data; agreement between methods is evidence, not "
    "proof. Word-level scores sum sub-word scores."))

#: Rows explained for global importance (the selected examples plus a seeded sample).
GLOBAL_ROWS_TEXT = 120
GLOBAL_ROWS_TABULAR = 200
#: Methods compared in the scorecard (kept to the fast ones so the demo stays in budget).
SCORECARD_METHODS_TEXT = ("integrated_gradients", "saliency", "input_x_gradient")
#: Examples the text scorecard compares methods on (each method runs twice, with faithfulness).
SCORECARD_EXAMPLES_TEXT = 3
SCORECARD_METHODS_TABULAR = ("integrated_gradients", "saliency", "input_x_gradient", "deeplift",
                             "feature_ablation", "shapley_sampling", "kernel_shap")


def _inputs(data: pd.DataFrame, column: str, rows: Sequence[int], is_text: bool):
    """The model inputs of ``rows``: their texts, or the table rows (index reset)."""
    return read_texts(data, column, rows) if is_text else \
        data.iloc[list(rows)].reset_index(drop=True)


def _applies(context: Context) -> str | None:
    if not context.is_classifier:
        return f"the report attributes class decisions; this is a {context.model.task!r} model"
    return None


def _run(context: Context) -> None:
    report, part, loaded, data = context.report, context.part, context.model, context.data
    text_column, rows, seed = context.text_column, list(context.rows), context.seed
    is_text = loaded.is_text
    inputs = _inputs(data, text_column, rows, is_text)
    # fixed steps for text keep the demo in budget; the completeness error is reported.
    # The scorecard uses the same steps, so its integrated-gradients rows are these ones.
    n_steps = 16 if is_text else 32
    method = "integrated_gradients"
    result = attribute(loaded, inputs, method=method, n_steps=n_steps, seed=seed,
                       progress=False)
    explanations = result.explanations()
    if is_text:
        report.add(result, section="attributions", title=f"{part}: word attributions of the "
                   "selected examples", plots="text", plot_options={"max_inputs": len(rows)},
                   frame_options={"level": "word"},
                   caption="Integrated gradients on the word embeddings against an all-[PAD] "
                           "baseline, explaining the predicted class; red pushes toward it, "
                           "blue against.")
    else:
        frame = result.to_frame()
        for k in range(min(2, len(rows))):
            report.add(result, section="attributions",
                       title=f"{part}: attribution of selected example {k + 1} (row "
                             f"{rows[k]})", plots="waterfall", plot_options={"input": k},
                       data=frame[frame["input_id"] == k].reset_index(drop=True),
                       caption="Integrated gradients from the all-zero baseline (training "
                               "means of numeric features, no category) to this row's "
                               "output.")
    # the faithfulness definition is the same in every row: the card names it
    columns = [c for c in ("input", "predicted_label", "predicted_score",
                           "comprehensiveness", "random_comprehensiveness", "beats_random",
                           "relative_delta", "summary") if c in explanations.columns]
    table = explanations[columns].copy()
    if not is_text:
        table = table.drop(columns=["input"], errors="ignore")
    table.insert(0, "row", [rows[int(i)] for i in explanations["input_id"]])
    report.add(table, section="attributions", title=f"{part}: what each explanation says",
               max_rows=len(table),
               caption="Plain-language summary of each selected example's attribution, "
                       "with its faithfulness: comprehensiveness (drop of the predicted "
                       "probability when the top-ranked units are removed) next to that of "
                       "a random ranking.")
    if "comprehensiveness" in table:
        value, label = findings.beats_random_card(explanations, method)
        report.add_metric(f"{part}: {label}", value, sources=report.last_id,
                          kind="beats_random", part=part)
    _run_global_importance(report, part, loaded, data, text_column, rows, seed=seed,
                           is_text=is_text, progress=context.progress)
    _run_scorecard(report, part, loaded, data, text_column, rows, seed=seed,
                   is_text=is_text, n_steps=n_steps)


def _run_global_importance(report, part, loaded, data, text_column, rows, *, seed, is_text,
                           progress):
    # integrated gradients: the scorecard shows the one-gradient methods (saliency, input x
    # gradient) no better than a random ranking on this model, so fewer steps for text (16)
    # keep the demo in budget without an unfaithful method
    pool = min(len(data), GLOBAL_ROWS_TEXT if is_text else GLOBAL_ROWS_TABULAR)
    rng = np.random.default_rng(seed)
    chosen = set(rows)
    others = [int(r) for r in rng.permutation(len(data)) if int(r) not in chosen]
    order = list(rows) + others[:max(0, pool - len(rows))]
    global_inputs = _inputs(data, text_column, order, is_text)
    method = "integrated_gradients"
    overall = attribute(loaded, global_inputs, method=method, seed=seed, faithfulness=False,
                        progress=progress, n_steps=16 if is_text else 32)
    unit = "word" if is_text else "feature"
    if is_text:  # whitespace words: "doesn't" is one word, not "doesn", "'" and "t"
        words = findings.whitespace_words(overall.to_frame(level="word"), global_inputs)
        importance = findings.word_importance(words)
    else:
        importance = overall.global_importance(min_count=findings.MIN_COUNT)
    importance["n_inputs"] = len(order)  # the rows explained, so the finding's count is here
    fig = importance_figure(importance, title=findings.importance_title(
        unit, method, min_count=findings.MIN_COUNT, scope=f"{len(order)} rows ({part})",
        top_k=findings.shown_units(importance)))
    report.add(fig, section="attributions", title=f"{part}: global importance over "
               f"{len(order)} rows",
               caption=f"Mean signed attribution ({method.replace('_', ' ')}) of each {unit} "
                       f"over all its occurrences (at least {findings.MIN_COUNT}), per "
                       f"predicted class, with 95% Student-t intervals of the mean"
                       + ("; words are the text between spaces, without surrounding "
                          "punctuation." if is_text else "."))
    report.add(overall, section="attributions", title=f"{part}: global importance table",
               plots=(), data=importance,
               caption=f"The {unit}s of the figure above: occurrences, mean and mean absolute "
                       f"score, 95% Student-t interval of the mean, over the {len(order)} rows "
                       f"explained (column n_inputs).")
    report.add_finding(findings.importance_finding(part, importance, n_rows=len(order),
                                                   unit=unit, method=method),
                       sources=report.last_id, kind="importance", part=part)


def _run_scorecard(report, part, loaded, data, text_column, rows, *, seed, is_text, n_steps):
    if is_text:
        rows = list(rows)[:SCORECARD_EXAMPLES_TEXT]
    inputs = _inputs(data, text_column, rows, is_text)
    methods = SCORECARD_METHODS_TEXT if is_text else SCORECARD_METHODS_TABULAR
    result = scorecard(loaded, inputs, methods=methods, seed=seed, n_steps=n_steps)
    # Wall time and memory are measurements, different on every run: the report keeps the
    # deterministic columns (so it regenerates byte for byte) and bench/ records the costs.
    full = result.to_frame()
    table = full.drop(columns=["seconds", "peak_memory_mb"], errors="ignore")
    # robustness is not run here (its columns are all NaN) and the definition is one: said in
    # the caption, they would only widen the table
    table = table.dropna(axis=1, how="all")
    definition = ", ".join(dict.fromkeys(table.pop("faithfulness_definition").astype(str))) \
        if "faithfulness_definition" in table else None
    fig, ax = new_figure(6.0, 1.4 + 0.4 * len(table))
    result.plot("faithfulness", ax=ax)
    ax.set_title(f"Faithfulness of each method on {len(rows)} examples ({part})")
    report.add(fig, section="attributions", title=f"{part}: explanation scorecard",
               caption="Comprehensiveness of each method's ranking (drop of the predicted "
                       "probability when its top units are removed) next to a random ranking's.")
    report.add(table, section="attributions", title=f"{part}: scorecard table",
               caption=f"Each method on the first {len(rows)} selected examples: faithfulness "
                       + (f"({definition} definition) " if definition else "")
                       + "against a random ranking, stability across two seeds (Spearman), "
                       "agreement with the first method. Time and memory are left out: they "
                       "change from run to run and machine to machine, so they are not "
                       "results of the model.")
    source = report.last_id
    report.add_finding(findings.scorecard_finding(part, full), sources=source,
                       kind="scorecard", part=part)
    value, label = findings.scorecard_card(full)
    report.add_metric(f"{part}: {label}", value, sources=source, kind="scorecard", part=part)
    per_input = []
    for method, explained in result.results.items():
        frame = explained.explanations()
        per_input.append(pd.DataFrame({
            "method": method, "input_id": frame["input_id"],
            "row": [rows[int(i)] for i in frame["input_id"]],
            "comprehensiveness": frame["comprehensiveness"],
            "random_comprehensiveness": frame["random_comprehensiveness"],
            "beats_random": frame["comprehensiveness"] > frame["random_comprehensiveness"]}))
    per_input = pd.concat(per_input, ignore_index=True)
    report.add(per_input, section="attributions", title=f"{part}: scorecard per explanation",
               max_rows=min(len(per_input), 24),
               caption="The scorecard's faithfulness of every explanation (the table above "
                       "averages these); integrated gradients here is the same computation as "
                       "in the table of what each explanation says.")



ATTRIBUTIONS = Analysis(
    "attributions", "attributions of the selected examples with plain-language summaries, "
                    "global importance and the explanation scorecard (classifiers)",
    SECTION, _run, _applies)
