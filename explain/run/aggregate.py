"""Dataset-level aggregates of a finished run, streamed from its shards.

Each function reads one shard of one table at a time (``explain.run.store.read_table``) and
keeps only running sums, so the memory it needs grows with the number of distinct words, heads
or groups, never with the number of rows (but ``scored_rows`` and ``audit_run``: an audit needs
every row, so they hold the columns it reads):

* ``global_importance``: per method x predicted label x word or feature (an ``attribute`` run's
  ``units``): ``count``, ``mean_score``, ``mean_abs_score`` and the Student-t interval of
  ``AttributionResult.global_importance`` (the same numbers on the same rows);
* ``faithfulness``: per method x measure (an ``attribute`` run's ``explanations``): the mean
  comprehensiveness and sufficiency of the explanations and of the random rankings of the same
  rows, their paired gain, the completeness error and the integration steps, with Student-t
  intervals, and the share of rows that beat the random ranking with its Wilson interval;
* ``head_statistics``: per layer x head x statistic (an ``attention`` run's ``heads``): the
  mean over all texts with its Student-t interval and count;
* ``flip_rates``: how often swapping the identity terms of a text flips its predicted class (a
  ``counterfactual`` run), per swap group and overall, with Wilson intervals;
* ``prediction_counts``: rows per predicted class (and true class, when the run kept a label)
  of a ``predict`` or ``score`` run;
* ``scored_rows`` (a ``score`` run's ``scores`` as one frame) and ``audit_run`` (the group
  fairness audit of those rows, ``explain.audit(None, frame, score=..., ...)``: the tables the
  audit of the model on the same rows gives).

Each refuses a run that is incomplete ("N of M shards done; rerun the same command to finish")
or of another analysis, naming the directory.

Sums of squares are merged shard by shard as centred sums (Chan, Golub and LeVeque's pairwise
update) rather than as raw sums of squares, which lose every digit of the variance when the
mean is large against the spread.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..attention.graph import HEAD_STATISTICS
from ..checks import positive_int, probability
from ..fairness.intervals import wilson_interval
from .store import read_manifest, read_table

__all__ = ["FAITHFULNESS_MEASURES", "audit_run", "faithfulness", "flip_rates",
           "global_importance", "head_statistics", "prediction_counts", "scored_rows"]

#: The per-explanation columns ``faithfulness`` averages, in its order (``beats_random``, a
#: share, follows ``comprehensiveness_gain``).
FAITHFULNESS_MEASURES = ("comprehensiveness", "random_comprehensiveness",
                         "comprehensiveness_gain", "sufficiency", "random_sufficiency",
                         "relative_delta", "n_steps")

# ------------------------------------------------------------------------ the run directory


def _complete(out, analyses: Sequence[str], what: str) -> dict[str, Any]:
    """The manifest of a complete run of one of ``analyses`` (clear errors otherwise)."""
    manifest = read_manifest(out)
    if manifest.get("analysis") not in analyses:
        needed = " or ".join(repr(a) for a in analyses)
        raise ValueError(f"{str(out)!r} is a run of {manifest.get('analysis')!r}; {what} needs "
                         f"a run of {needed} (explain run {analyses[0]} MODEL --data PATH "
                         f"--out DIR)")
    shards = manifest.get("shards", [])
    done = sum(s.get("status") == "done" for s in shards)
    if manifest.get("status") != "complete" or done < len(shards):
        raise ValueError(f"the run in {str(out)!r} is incomplete: {done} of {len(shards)} "
                         f"shards done; rerun the same command to finish")
    return manifest


def _table_columns(out, manifest: dict[str, Any], table: str) -> list[str]:
    """The columns of ``table`` (from the Parquet schema of its first shard)."""
    import pyarrow.parquet as pq

    for shard in manifest.get("shards", []):
        record = shard.get("files", {}).get(table)
        if record is not None:
            return list(pq.read_schema(Path(out) / record["path"]).names)
    raise ValueError(f"the run in {str(out)!r} has no table {table!r}; its tables: "
                     f"{', '.join(manifest.get('tables', {})) or 'none'}")


def _check_columns(out, table: str, present: Sequence[str], wanted: Sequence[str]) -> None:
    missing = [c for c in wanted if c not in present]
    if missing:
        raise ValueError(f"table {table!r} of the run in {str(out)!r} has no column(s) "
                         f"{', '.join(map(repr, missing))}; its columns: {', '.join(present)}")


# ------------------------------------------------------------------------ streamed moments


def _moments(frame: pd.DataFrame, keys: list[str], value: str) -> pd.DataFrame:
    """``count``, ``total``, ``total_abs`` and ``m2`` (sum of squared deviations from the
    group's own mean) of the finite ``value`` per ``keys`` of one shard."""
    frame = frame.loc[np.isfinite(frame[value].to_numpy(dtype=float)), [*keys, value]]
    frame["magnitude"] = frame[value].abs()
    frame["deviation"] = (frame[value]
                          - frame.groupby(keys, sort=False)[value].transform("mean")) ** 2
    grouped = frame.groupby(keys, sort=False)
    return pd.DataFrame({"count": grouped.size(), "total": grouped[value].sum(),
                         "total_abs": grouped["magnitude"].sum(),
                         "m2": grouped["deviation"].sum()})


def _merge(left: pd.DataFrame | None, right: pd.DataFrame) -> pd.DataFrame:
    """Running moments of two disjoint sets of rows, merged (Chan et al.'s update of ``m2``)."""
    if left is None:
        return right
    index = left.index.union(right.index)
    a = left.reindex(index, fill_value=0.0)
    b = right.reindex(index, fill_value=0.0)
    n = a["count"] + b["count"]
    with np.errstate(invalid="ignore", divide="ignore"):
        delta = (np.where(b["count"] > 0, b["total"] / b["count"], 0.0)
                 - np.where(a["count"] > 0, a["total"] / a["count"], 0.0))
        m2 = a["m2"] + b["m2"] + np.where(n > 0, delta * delta * a["count"] * b["count"] / n,
                                          0.0)
    return pd.DataFrame({"count": n, "total": a["total"] + b["total"],
                         "total_abs": a["total_abs"] + b["total_abs"], "m2": m2}, index=index)


def _finish(sums: pd.DataFrame, confidence: float) -> pd.DataFrame:
    """Mean, mean |value| and the Student-t interval of the mean from running moments: mean
    +- t(count - 1) * sd / sqrt(count), sd with ddof=1 (``importance_table``'s interval; NaN
    for a single value)."""
    from scipy import stats

    count = sums["count"].to_numpy(dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = sums["total"].to_numpy(dtype=float) / count
        spread = np.sqrt(np.maximum(sums["m2"].to_numpy(dtype=float), 0.0) / (count - 1))
        half = stats.t.ppf(0.5 + confidence / 2, count - 1) * spread / np.sqrt(count)
    several = count > 1
    out = sums.index.to_frame(index=False)
    out["count"] = count.astype("int64")
    out["mean_score"] = mean
    out["mean_abs_score"] = sums["total_abs"].to_numpy(dtype=float) / count
    out["ci_low"] = np.where(several, mean - half, np.nan)
    out["ci_high"] = np.where(several, mean + half, np.nan)
    return out


# ------------------------------------------------------------------------ the aggregates


def global_importance(out: str | os.PathLike, *, min_count: int = 1, lowercase: bool = True,
                      confidence: float = 0.95) -> pd.DataFrame:
    """Dataset-level importance of each word or feature of an ``attribute`` run, per method and
    predicted label, over every row of the run.

    Columns: ``method``, ``predicted_label``, ``label`` (word, lowercased unless
    ``lowercase=False``, or feature), ``count`` (occurrences, at least ``min_count``),
    ``mean_score``, ``mean_abs_score``, ``ci_low``, ``ci_high`` (Student-t interval of
    ``mean_score`` at ``confidence``; NaN for one occurrence), ``n_rows`` (rows of the run the
    method explained: those with at least one unit). Sorted by method, predicted label, then
    ``mean_abs_score`` descending: per method, the numbers and order of
    ``AttributionResult.global_importance`` on the same rows.
    """
    positive_int(min_count, "min_count", fix="pass e.g. min_count=1")
    probability(confidence, "confidence", fix="pass e.g. confidence=0.95")
    manifest = _complete(out, ("attribute",), "global importance")
    wanted = ["row", "unit", "method", "predicted_label", "label", "score"]
    _check_columns(out, "units", _table_columns(out, manifest, "units"), wanted)
    keys = ["method", "predicted_label", "label"]
    sums, rows = None, {}
    for frame in read_table(out, "units", wanted):
        units = set(frame["unit"].unique())
        if units & {"patch", "pixel"}:
            raise ValueError(f"the run in {str(out)!r} attributes image {sorted(units)[0]}es; "
                             f"global importance is for words and features (image patches do "
                             f"not mean the same thing across images)")
        if lowercase:
            text = frame["unit"].isin(["word", "token"])
            frame.loc[text, "label"] = frame.loc[text, "label"].str.lower()
        sums = _merge(sums, _moments(frame, keys, "score"))
        for method, explained in frame.groupby("method", sort=False)["row"]:
            rows[method] = rows.get(method, 0) + int(explained.nunique())
    if sums is None:
        columns = [*keys, "count", "mean_score", "mean_abs_score", "ci_low", "ci_high", "n_rows"]
        return pd.DataFrame(columns=columns)
    table = _finish(sums.sort_index(), confidence)
    table = table[table["count"] >= min_count]
    table["n_rows"] = table["method"].map(rows).astype("int64")
    return table.sort_values(["method", "predicted_label", "mean_abs_score"],
                             ascending=[True, True, False], kind="stable").reset_index(drop=True)


def faithfulness(out: str | os.PathLike, *, confidence: float = 0.95) -> pd.DataFrame:
    """How faithful and how complete the explanations of an ``attribute`` run are, over every
    explanation of the run (its ``explanations`` table), per method.

    One row per method x measure: ``method``, ``measure`` (of ``FAITHFULNESS_MEASURES``, and
    ``beats_random``: the share of explanations whose comprehensiveness is above the random
    ranking's on the same input), ``count`` (explanations with a finite value), ``mean``,
    ``ci_low``, ``ci_high`` (Student-t interval of the mean at ``confidence``, NaN for one
    value; Wilson for ``beats_random``), ``interval`` (which), ``definition`` (the
    faithfulness definition of the run, e.g. ``"aopc"``). A measure the run did not compute
    (faithfulness off, a method without a completeness error or without integration steps)
    has no row.
    ``comprehensiveness_gain`` is the paired difference per explanation, so its interval is
    that of the gain, not the difference of two intervals."""
    probability(confidence, "confidence", fix="pass e.g. confidence=0.95")
    manifest = _complete(out, ("attribute",), "faithfulness")
    present = _table_columns(out, manifest, "explanations")
    _check_columns(out, "explanations", present, ["row", "method"])
    measures = [m for m in FAITHFULNESS_MEASURES if m in present]
    definition = ["faithfulness_definition"] if "faithfulness_definition" in present else []
    sums, trials, definitions = None, {}, {}
    for frame in read_table(out, "explanations", ["row", "method", *measures, *definition]):
        long = frame.melt(id_vars=["method"], value_vars=measures, var_name="measure",
                          value_name="value")
        long["value"] = pd.to_numeric(long["value"], errors="coerce")
        # n_steps is 0 for a method that does not integrate: no steps to average
        long.loc[(long["measure"] == "n_steps") & (long["value"] == 0), "value"] = np.nan
        sums = _merge(sums, _moments(long, ["method", "measure"], "value"))
        if {"comprehensiveness", "random_comprehensiveness"} <= set(measures):
            measured = frame.dropna(subset=["comprehensiveness", "random_comprehensiveness"])
            beats = measured["comprehensiveness"] > measured["random_comprehensiveness"]
            for method, won in beats.groupby(measured["method"], sort=False):
                entry = trials.setdefault(method, [0, 0])
                entry[0] += len(won)
                entry[1] += int(won.sum())
        if definition:
            for method, found in frame.groupby("method", sort=False)[definition[0]]:
                definitions.setdefault(method, set()).update(found.dropna().astype(str))
    columns = ["method", "measure", "count", "mean", "ci_low", "ci_high", "interval",
               "definition"]
    if sums is None:
        return pd.DataFrame(columns=columns)
    table = _finish(sums, confidence).rename(columns={"mean_score": "mean"})
    table["interval"] = "Student-t"
    if trials:
        methods = list(trials)
        n = np.array([trials[m][0] for m in methods])
        k = np.array([trials[m][1] for m in methods])
        low, high = wilson_interval(k, n, confidence)
        with np.errstate(invalid="ignore", divide="ignore"):
            share = k / n
        table = pd.concat([table, pd.DataFrame({
            "method": methods, "measure": "beats_random", "count": n, "mean": share,
            "ci_low": low, "ci_high": high, "interval": "Wilson"})], ignore_index=True)
    table["definition"] = table["method"].map(
        lambda m: ", ".join(sorted(definitions.get(m, ()))) or None)
    order = list(FAITHFULNESS_MEASURES)
    order.insert(order.index("comprehensiveness_gain") + 1, "beats_random")
    table = table.sort_values(["method", "measure"], key=lambda c: c.map(order.index)
                              if c.name == "measure" else c, kind="stable")
    return table[columns].reset_index(drop=True)


def head_statistics(out: str | os.PathLike, *, confidence: float = 0.95) -> pd.DataFrame:
    """Each head's statistics (``explain.attention.graph.HEAD_STATISTICS``) over every text of
    an ``attention`` run, one row per layer x head x statistic: ``layer``, ``head``,
    ``statistic``, ``count`` (texts with a finite value), ``mean`` (over the texts: what
    ``AttentionResult.head_statistics`` gives on the same texts), ``ci_low``, ``ci_high``
    (Student-t interval of the mean at ``confidence``; NaN for one text)."""
    probability(confidence, "confidence", fix="pass e.g. confidence=0.95")
    manifest = _complete(out, ("attention",), "head statistics")
    present = _table_columns(out, manifest, "heads")
    statistics = [s for s in HEAD_STATISTICS if s in present]
    _check_columns(out, "heads", present, ["row", "layer", "head", *statistics[:1]])
    sums = None
    for frame in read_table(out, "heads", ["row", "layer", "head", *statistics]):
        long = frame.melt(id_vars=["layer", "head"], value_vars=statistics,
                          var_name="statistic", value_name="value")
        sums = _merge(sums, _moments(long, ["layer", "head", "statistic"], "value"))
    table = _finish(sums, confidence).rename(columns={"mean_score": "mean"})
    order = {s: i for i, s in enumerate(statistics)}
    table = table.sort_values(["layer", "head", "statistic"], key=lambda c: c.map(order)
                              if c.name == "statistic" else c, kind="stable")
    return table[["layer", "head", "statistic", "count", "mean", "ci_low", "ci_high"]
                 ].reset_index(drop=True)


def flip_rates(out: str | os.PathLike, *, confidence: float = 0.95) -> pd.DataFrame:
    """How often the predicted class of a text flips when its identity terms are swapped (a
    ``counterfactual`` run: each swapped text is a pair, its version with the first words of the
    swap list and its version with the second words, one of them the original).

    One row per swap group (the group of the original text's words) and one ``"all"`` row:
    ``group``, ``n_texts`` (pairs), ``n_flips`` (pairs whose two versions get different
    predicted classes), ``flip_rate``, ``ci_low``, ``ci_high`` (Wilson interval at
    ``confidence``), and ``n_rows`` (rows of the run, swapped or not), first ``swaps`` when
    the run used several swap lists."""
    probability(confidence, "confidence", fix="pass e.g. confidence=0.95")
    manifest = _complete(out, ("counterfactual",), "flip rates")
    present = _table_columns(out, manifest, "counterfactuals")
    wanted = ["row", "group", "predicted_label", "is_original"]
    _check_columns(out, "counterfactuals", present, wanted)
    by = ["swaps"] if "swaps" in present else []
    counts: dict[tuple, list[int]] = {}
    for frame in read_table(out, "counterfactuals", [*wanted, *by]):
        pairs = pd.DataFrame({
            "group": frame[frame["is_original"].astype(bool)].set_index([*by, "row"])["group"],
            "flip": frame.groupby([*by, "row"], sort=False)["predicted_label"].nunique() > 1})
        overall = pairs.assign(group="all")
        for keys, flips in pd.concat([pairs, overall]).groupby([*by, "group"])["flip"]:
            entry = counts.setdefault(keys if isinstance(keys, tuple) else (keys,), [0, 0])
            entry[0] += len(flips)
            entry[1] += int(flips.sum())
    ordered = sorted(counts, key=lambda key: (key[:-1], key[-1] == "all", str(key[-1])))
    rows = [dict(zip([*by, "group"], key, strict=True), n_texts=counts[key][0],
                 n_flips=counts[key][1]) for key in ordered]
    table = pd.DataFrame(rows, columns=[*by, "group", "n_texts", "n_flips"])
    table["flip_rate"] = table["n_flips"] / table["n_texts"]
    table["ci_low"], table["ci_high"] = wilson_interval(table["n_flips"], table["n_texts"],
                                                        confidence)
    table["n_rows"] = int(manifest["data"]["n_rows"])
    return table


def prediction_counts(out: str | os.PathLike) -> pd.DataFrame:
    """How many rows of a ``predict`` or ``score`` run get each predicted class, by true class
    when the run kept a label: ``label`` (only with one; as the run kept it, text),
    ``predicted_label``, ``predicted_index``, ``count``."""
    manifest = _complete(out, ("predict", "score"), "prediction counts")
    table = {"predict": "predictions", "score": "scores"}[manifest["analysis"]]
    present = _table_columns(out, manifest, table)
    keys = [*(["label"] if "label" in present else []), "predicted_label", "predicted_index"]
    total: pd.Series | None = None
    for frame in read_table(out, table, keys):
        counts = frame.groupby(keys, sort=False).size()
        total = counts if total is None else total.add(counts, fill_value=0)
    if total is None:
        return pd.DataFrame(columns=[*keys, "count"])
    table = total.astype("int64").rename("count").reset_index()
    return table.sort_values(keys, kind="stable").reset_index(drop=True)


def scored_rows(out: str | os.PathLike, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """The ``scores`` table of a ``score`` run as one frame (only ``columns``, default all), in
    row order: the input of ``explain.audit(None, frame, score=..., ...)``."""
    manifest = _complete(out, ("score",), "the scored rows")
    present = _table_columns(out, manifest, "scores")
    if columns is not None:
        columns = list(dict.fromkeys(["row", *columns]))
        _check_columns(out, "scores", present, columns)
    frames = list(read_table(out, "scores", columns))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=present)


def _class_names(manifest: dict[str, Any], present: Sequence[str]) -> list[str]:
    """The classes of a score run, in label order: its ``score_<class>`` columns (a kept input
    column may also start with ``score_``: ``score_text`` of COMPAS)."""
    kept = set(manifest["config"].get("keep") or ())
    return [c[len("score_"):] for c in present if c.startswith("score_") and c not in kept]


def audit_run(out: str | os.PathLike, *, sensitive_features: str | Sequence[str],
              label: str | None = None, **options: Any):
    """The group fairness audit (``explain.audit``) of every row of a ``score`` run, from its
    scores: what ``explain.audit(model, data, ...)`` computes from the model on the same rows.

    A binary classifier's decisions are its probability of class 1 (``score_<class 1>``) at
    ``threshold`` (default 0.5), and ``label`` (a column of the scores table, usually
    ``"label"``: the run's ``--label`` column, kept as text, which may also be called by its
    name in the data) counts as positive when it is class 1's name or index; a model
    with more classes is audited one class against the rest, from its predicted class (that
    needs ``label``). ``options``: the other keyword arguments of ``explain.audit``.
    """
    from ..checks import as_names
    from ..fairness import audit

    manifest = _complete(out, ("score",), "an audit")
    present = _table_columns(out, manifest, "scores")
    sensitive = as_names(sensitive_features, "sensitive_features")
    names = _class_names(manifest, present)
    for key in ("score", "prediction", "positive_label", "classes", "text"):
        if key in options:
            raise TypeError(f"audit_run takes no {key}=: the decisions are the run's scores "
                            f"of {', '.join(names)}")
    if label is not None and label not in present and label == manifest["config"].get("label"):
        label = "label"  # the run's --label column, stored as "label"
    columns = [*sensitive, *([label] if label else [])]
    _check_columns(out, "scores", present, columns)
    frame = scored_rows(out, [*columns, "predicted_label",
                              *(f"score_{n}" for n in names)])
    if label is not None:
        known = {**{str(i): n for i, n in enumerate(names)}, **{n: n for n in names}}
        values = frame[label].astype(str)
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ValueError(f"label column {label!r} of the run in {str(out)!r} holds "
                             f"{unknown[:10]}; the model's classes are {names} (indices "
                             f"0..{len(names) - 1})")
        frame[label] = values.map(known)
    if len(names) == 2:
        return audit(None, frame, sensitive_features=sensitive, label=label,
                     score=f"score_{names[1]}",
                     positive_label=names[1] if label is not None else None, **options)
    if label is None:
        raise ValueError(f"the run in {str(out)!r} scores {len(names)} classes; auditing them "
                         f"one against the rest needs label= (the column of true classes)")
    return audit(None, frame, sensitive_features=sensitive, label=label,
                 prediction="predicted_label", classes=names, **options)
