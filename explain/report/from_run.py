"""``report_from_run``: the report of finished runs (``explain run``), from their dataset-level
aggregates over every row, not a sample.

    report = report_from_run(["runs/rt-attribute", "runs/rt-score"], name="rt",
                             sensitive=["group"])
    report.save()                      # reports/rt/...; explain report --from A --from B

Each run adds what its analysis measured: a ``predict`` or ``score`` run the predicted classes
(and the accuracy when it kept a label), an ``attribute`` run the global importance of every
word or feature per predicted class, an ``attention`` run each head's statistics over all
texts, a ``counterfactual`` run its flip rates, and a ``score`` run the group fairness audit of
all its rows when ``sensitive`` columns are named. Every number comes from
``explain.run.aggregate``, streamed shard by shard; every finding is worded from the table it
cites. The report's configuration cites each run (directory, analysis, fingerprint, the SHA-256
of its manifest).
"""

from __future__ import annotations

import hashlib
import os
import re
import types
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..attention.figures import head_grid_figure
from ..attribution.figures import importance_figure
from ..attribution.methods import method_title
from ..checks import as_names
from ..fairness.intervals import wilson_interval
from ..run import aggregate
from ..run.store import read_manifest
from . import findings
from .core import Report
from .fairness import _add_audit

__all__ = ["report_from_run"]

#: Head statistics drawn as heatmaps (the table holds all of them).
HEATMAP_STATISTICS = ("entropy", "special_share")
_ANALYSES = ("predict", "score", "attribute", "attention", "counterfactual")
_HAS_LETTER = re.compile(r"[^\W_]")
#: What fills each section of a report from runs (the others are not computed by explain run).
_FILLS = {"predictions": "a predict or score run adds it (explain run score MODEL --data PATH "
                         "--out DIR)",
          "attributions": "an attribute run adds it (explain run attribute MODEL --data PATH "
                          "--out DIR)",
          "attention": "an attention run adds it (explain run attention MODEL --data PATH "
                       "--out DIR)",
          "fairness": "a score run with --sensitive COLUMN (its group audit) or a "
                      "counterfactual run adds it"}
_NOT_RUN = ("explain run does not compute it; explain report --model MODEL --data PATH builds "
            "it on a sample")


def _percent(value: float) -> str:
    return f"{100 * value:.1f}%"


def _runs(directory) -> list[tuple[Path, dict[str, Any]]]:
    """Each directory with its manifest: complete runs of a built-in analysis only."""
    directories = [directory] if isinstance(directory, (str, os.PathLike)) else list(directory)
    if not directories:
        raise ValueError("report_from_run needs at least one run directory (explain report "
                         "--from DIR)")
    runs = []
    for entry in directories:
        out = Path(entry)
        manifest = read_manifest(out)
        shards = manifest["shards"]
        done = sum(s["status"] == "done" for s in shards)
        if manifest["status"] != "complete" or done != len(shards):
            raise ValueError(f"the run in {str(out)!r} is incomplete: {done} of {len(shards)} "
                             f"shards done; rerun the same command to finish")
        if manifest["analysis"] not in _ANALYSES:
            raise ValueError(f"the run in {str(out)!r} is of analysis "
                             f"{manifest['analysis']!r}; a report reads runs of "
                             f"{', '.join(_ANALYSES)}")
        runs.append((out, manifest))
    return runs


def _citation(out: Path, manifest: Mapping[str, Any]) -> dict[str, Any]:
    return {"directory": str(out.resolve()), "analysis": manifest["analysis"],
            "fingerprint": manifest["fingerprint"],
            "manifest_sha256": hashlib.sha256((out / "manifest.json").read_bytes()).hexdigest(),
            "model": manifest["model"]["name"], "model_sha256": manifest["model"]["sha256"],
            "data": manifest["data"]["path"], "data_sha256": manifest["data"]["sha256"],
            "n_rows": manifest["data"]["n_rows"]}


def _default_name(out: Path) -> str:
    base = re.sub(r"[^A-Za-z0-9._-]+", "-", out.resolve().name).strip("-.")
    return base or "run"


def report_from_run(directory: str | os.PathLike | Sequence[str | os.PathLike], *,
                    name: str | None = None, title: str | None = None,
                    sensitive: str | Sequence[str] | None = None, label: str | None = None,
                    min_count: int = findings.MIN_COUNT, seed: int = 0,
                    config: Mapping[str, Any] | None = None,
                    audit_options: Mapping[str, Any] | None = None) -> Report:
    """A ``Report`` of one finished run directory or several (e.g. the ``attribute`` run and
    the ``score`` run of the same data).

    ``name``: the report's directory name (default: the first run directory's name).
    ``sensitive``: columns of a ``score`` run's table to audit groups by (kept by the run, as
    ``explain run score`` keeps every non-text column by default). ``label``: its column of
    true classes (default ``"label"`` when the run kept one). ``min_count``: occurrences a word
    or feature needs to be shown in the global importance. ``seed``: the audit's permutations.
    ``config``: recorded in the manifest beside the runs it cites. ``audit_options``: more
    keyword arguments of ``explain.audit``.
    """
    runs = _runs(directory)
    sensitive = as_names(sensitive, "sensitive") if sensitive else []
    if sensitive and not any(m["analysis"] == "score" for _, m in runs):
        raise ValueError(f"sensitive={sensitive} needs a score run among the directories "
                         f"({', '.join(str(o) for o, _ in runs)} are runs of "
                         f"{', '.join(sorted({m['analysis'] for _, m in runs}))}); make one "
                         f"with explain run score MODEL --data PATH --out DIR")
    citations = [_citation(out, manifest) for out, manifest in runs]
    recorded = {**dict(config or {}), "runs": citations}
    report = Report(name or _default_name(runs[0][0]),
                    title=title or f"Report of {len(runs)} run{'s' if len(runs) > 1 else ''} "
                                   f"({', '.join(m['analysis'] for _, m in runs)})",
                    seed=seed, config=recorded,
                    description="Every number is computed over all rows of the runs listed "
                                "in the summary (their shards, streamed), not over a sample.")
    _summary(report, runs)
    for out, manifest in runs:
        part = str(manifest["model"]["name"])
        with report.stage(f"{manifest['analysis']}:{out.name}"):
            analysis = manifest["analysis"]
            if analysis in ("predict", "score"):
                _predictions(report, out, manifest, part)
            if analysis == "score" and sensitive:
                _audit(report, out, manifest, part, sensitive=sensitive, label=label,
                       seed=seed, options=audit_options or {})
            elif analysis == "attribute":
                _importance(report, out, manifest, part, min_count=min_count)
                _faithfulness(report, out, manifest, part)
            elif analysis == "attention":
                _heads(report, out, manifest, part)
            elif analysis == "counterfactual":
                _flips(report, out, manifest, part)
    analyses = ", ".join(sorted({m["analysis"] for _, m in runs}))
    for section, count in report.sections.items():
        if count == 0 and section not in ("summary", "caveats", "provenance"):
            report.skip(section, f"none of the runs ({analyses}) measures this; "
                                 f"{_FILLS.get(section, _NOT_RUN)}")
    return report


# ------------------------------------------------------------------------ the sections


def _summary(report: Report, runs) -> None:
    models = {}
    for _, manifest in runs:
        model = manifest["model"]
        models.setdefault((model["name"], model["sha256"]), model)
    for model in models.values():
        report.add_model(types.SimpleNamespace(
            name=model["name"], task=None, label_names=[], card={},
            provenance={"name": model["name"], "source": model.get("source"),
                        "weights_sha256": model["sha256"]}))
    table = pd.DataFrame([{
        "run": out.name, "analysis": m["analysis"], "model": m["model"]["name"],
        "data": Path(m["data"]["path"]).name, "rows": int(m["data"]["n_rows"]),
        "methods": ", ".join(m["config"].get("methods") or ()) or "",
        "engine": m["engine"], "shards": len(m["shards"]),
        "seconds": round(float(m["seconds"]), 1)} for out, m in runs])
    report.add(table, section="summary", title="Runs",
               caption="The runs this report reads (explain run): the model, the data file and "
                       "how many rows, the engine, shards and the run's wall time (seconds, "
                       "over every resume). Each run's directory, data path, fingerprint and "
                       "manifest hash are in this report's manifest.json (config.runs).")


def _predictions(report: Report, out: Path, manifest, part: str) -> None:
    counts = aggregate.prediction_counts(out)
    n_rows = int(manifest["data"]["n_rows"])
    per_class = counts.groupby("predicted_label", sort=False)["count"].sum()
    table = pd.DataFrame({"predicted_label": per_class.index, "count": per_class.to_numpy()})
    table["share"] = table["count"] / n_rows
    report.add(table, section="predictions", title=f"{part}: predicted classes over all rows",
               caption=f"How many of the run's {n_rows:,} rows the model puts in each class.")
    if "label" not in counts:
        report.add("Accuracy needs the true classes: rerun with explain run ... --label COLUMN.",
                   section="predictions")
        return
    true = counts["label"].astype(str)
    correct = (true == counts["predicted_label"]) | (true == counts["predicted_index"].astype(str))
    labelled = int(counts["count"].sum())
    right = int(counts.loc[correct, "count"].sum())
    low, high = wilson_interval(right, labelled)
    confusion = counts.rename(columns={"label": "true_label"})[
        ["true_label", "predicted_label", "count"]]
    report.add(confusion, section="predictions", title=f"{part}: true against predicted class",
               max_rows=len(confusion),
               caption=f"Rows per true class (the run's label column, as text) and predicted "
                       f"class; {right:,} of {labelled:,} are right ({_percent(right / labelled)}"
                       f", 95% Wilson interval [{_percent(float(low))}, "
                       f"{_percent(float(high))}]).")
    source = report.last_id
    report.add_metric(f"{part}: accuracy", right / labelled, percent=True,
                      note=f"{labelled:,} rows; 95% Wilson CI [{_percent(float(low))}, "
                           f"{_percent(float(high))}]", sources=source, kind="accuracy",
                      part=part)
    report.add_finding(f"{part}: the model is right on {_percent(right / labelled)} of "
                       f"{labelled:,} labelled rows (95% Wilson interval "
                       f"[{_percent(float(low))}, {_percent(float(high))}]).",
                       sources=source, kind="predictions", part=part)


def _unit(manifest) -> str:
    """What an attribute run scores: words of texts, else features."""
    return "feature" if manifest["config"].get("text_column") is None else "word"


def _importance(report: Report, out: Path, manifest, part: str, *, min_count: int) -> None:
    every = aggregate.global_importance(out)  # every word once: the coverage, then min_count
    n_rows = int(manifest["data"]["n_rows"])
    unit = _unit(manifest)
    for method in manifest["config"].get("methods") or sorted(set(every["method"])):
        mine = every[every["method"] == method].drop(columns="method")
        covered = int(mine["n_rows"].iloc[0]) if len(mine) else 0
        occurrences = int(mine["count"].sum())
        mine = mine[mine["count"] >= min_count]
        if unit == "word":  # punctuation is a word of the tokenizer, not of the reader
            words = [bool(_HAS_LETTER.search(str(w))) for w in mine["label"]]
            mine = mine.loc[np.asarray(words, dtype=bool)]
        mine = mine.reset_index(drop=True)
        name = method_title(method)
        coverage = (f"{covered:,} of the run's {n_rows:,} rows explained, {occurrences:,} "
                    f"{unit} occurrences")
        if mine.empty:
            report.add(f"{part}: no {unit} is seen at least {min_count} times in the "
                       f"{name} run ({coverage}), so there is no global importance to show.",
                       section="attributions")
            continue
        fig = importance_figure(mine, title=findings.importance_title(
            unit, method, min_count=min_count, scope=f"all {n_rows:,} rows ({part})",
            top_k=findings.shown_units(mine)))
        report.add(fig, section="attributions",
                   title=f"{part}: global importance ({name}) over {n_rows:,} rows",
                   caption=f"Mean signed attribution ({name}) of each {unit} over all its "
                           f"occurrences in the run (at least {min_count}), per predicted "
                           f"class, with 95% Student-t intervals of the mean"
                           + ("; words as the tokenizer splits them, punctuation left out."
                              if unit == "word" else "."))
        report.add(mine, section="attributions",
                   title=f"{part}: global importance table ({name})",
                   caption=f"The {unit}s of the figure: occurrences, mean and mean absolute "
                           f"score, 95% Student-t interval of the mean; n_rows: the rows "
                           f"explained ({coverage}).")
        source = report.last_id
        report.add_metric(f"{part}: rows covered by the global importance ({name})",
                          f"{covered:,} of {n_rows:,}", note=f"{occurrences:,} {unit} occurrences",
                          sources=source, kind="coverage", part=part)
        report.add_finding(findings.importance_finding(part, mine, n_rows=covered, unit=unit,
                                                       method=method, min_count=min_count),
                           sources=source, kind="importance", part=part)


def _faithfulness(report: Report, out: Path, manifest, part: str) -> None:
    table = aggregate.faithfulness(out)
    unit = _unit(manifest)
    for method in manifest["config"].get("methods") or sorted(set(table["method"])):
        mine = table[table["method"] == method].drop(columns="method").reset_index(drop=True)
        if mine.empty:
            continue
        name = method_title(method)
        report.add(mine, section="attributions",
                   title=f"{part}: faithfulness and completeness ({name}) over all rows",
                   caption=f"Means over every explanation of the run, with 95% intervals "
                           f"(Student-t; Wilson for the share beats_random): "
                           f"comprehensiveness (drop of the explained output when the "
                           f"top-ranked {unit}s are removed; higher = more faithful) and "
                           f"sufficiency (drop when only they are kept; lower = better), each "
                           f"beside a random ranking's on the same input; "
                           f"comprehensiveness_gain (the paired difference); relative_delta "
                           f"(completeness error over |f(x) - f(baseline)|) and n_steps "
                           f"(gradients evaluated) of an integrating method.")
        report.add_finding(findings.run_faithfulness_finding(part, mine, method=method,
                                                             unit=unit),
                           sources=report.last_id, kind="faithfulness", part=part)


def _heads(report: Report, out: Path, manifest, part: str) -> None:
    table = aggregate.head_statistics(out)
    n_rows = int(manifest["data"]["n_rows"])
    layers = sorted(set(table["layer"]))
    heads = sorted(set(table["head"]))
    for statistic in HEATMAP_STATISTICS:
        grid = table[table["statistic"] == statistic].pivot(
            index="layer", columns="head", values="mean").reindex(index=layers, columns=heads)
        fig = head_grid_figure(grid.to_numpy(dtype=float), ax=None, layers=layers,
                               heads=heads, statistic=statistic,
                               title=f"{part}: {statistic.replace('_', ' ')}, mean over all "
                                     f"{n_rows:,} texts")
        report.add(fig, section="attention",
                   title=f"{part}: head {statistic.replace('_', ' ')} over {n_rows:,} texts",
                   caption="Each head's statistic averaged over every text of the run (the "
                           "mean over query tokens, then texts); the table below gives the "
                           "intervals.")
    report.add(table, section="attention", title=f"{part}: head statistics over all texts",
               caption="Every statistic of every head: mean over the texts with a finite "
                       "value (count), 95% Student-t interval of the mean.")
    source = report.last_id
    entropy = table[table["statistic"] == "entropy"].dropna(subset=["mean"])
    special = table[table["statistic"] == "special_share"].dropna(subset=["mean"])
    if entropy.empty or special.empty:
        return
    low = entropy.iloc[int(entropy["mean"].to_numpy().argmin())]
    high = special.iloc[int(special["mean"].to_numpy().argmax())]
    report.add_finding(
        f"{part}: over {int(low['count']):,} texts, the most focused head is layer "
        f"{int(low['layer'])} head {int(low['head'])} (mean entropy {low['mean']:.3f} nats, "
        f"95% t-interval [{low['ci_low']:.3f}, {low['ci_high']:.3f}]); layer "
        f"{int(high['layer'])} head {int(high['head'])} gives special tokens the largest share "
        f"of its attention ({high['mean']:.3f}, [{high['ci_low']:.3f}, "
        f"{high['ci_high']:.3f}]).", sources=source, kind="heads", part=part)


def _flips(report: Report, out: Path, manifest, part: str) -> None:
    table = aggregate.flip_rates(out)
    swaps = manifest["config"].get("options", {}).get("swaps", "gender")
    swaps = swaps if isinstance(swaps, str) else "custom"
    n_rows = int(manifest["data"]["n_rows"])
    report.add(table, section="fairness",
               title=f"{part}: counterfactual flip rates ({swaps} swaps) over {n_rows:,} rows",
               caption=f"Texts with words of the '{swaps}' swap list on one side, each paired "
                       f"with its swapped version; a flip: the two versions get different "
                       f"predicted classes. Per group of the original text's words and "
                       f"overall, with 95% Wilson intervals.")
    source = report.last_id
    if table.empty:
        report.add_finding(f"{part}: none of the {n_rows:,} rows contains a word of the "
                           f"'{swaps}' swap list on one side only; no flip rate.",
                           sources=source, kind="counterfactual", part=part)
        return
    overall = table[table["group"] == "all"].iloc[0]
    groups = "; ".join(f"texts about {row.group}: {_percent(row.flip_rate)} of {row.n_texts:,}"
                       for row in table[table["group"] != "all"].itertuples(index=False))
    report.add_finding(
        f"{part}: swapping '{swaps}' words flips the predicted class of "
        f"{int(overall['n_flips']):,} of {int(overall['n_texts']):,} swappable texts "
        f"({_percent(overall['flip_rate'])}, 95% Wilson interval "
        f"[{_percent(overall['ci_low'])}, {_percent(overall['ci_high'])}]) among the run's "
        f"{n_rows:,} rows" + (f" ({groups})" if groups else "") + ".",
        sources=source, kind="counterfactual", part=part)


def _audit(report: Report, out: Path, manifest, part: str, *, sensitive: list[str],
           label: str | None, seed: int, options: Mapping[str, Any]) -> None:
    if label is None:
        present = manifest["config"].get("label")
        label = "label" if present is not None else None
    result = aggregate.audit_run(out, sensitive_features=sensitive, label=label, seed=seed,
                                 **options)
    n_rows = int(manifest["data"]["n_rows"])
    _add_audit(report, result, part=part, who=f"{part} model",
               title=f"{part}: group metrics of the model over {n_rows:,} rows",
               caption=f"Per-group rates of the model's decisions on every scored row of the "
                       f"run (its probability of the positive class at the threshold"
                       f"{'' if label else '; no label column, so only selection rates'}).")
