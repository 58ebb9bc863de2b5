"""The demo report, built once per test session and shared by the report test modules.

Building it runs every analysis on the reference models (minutes on a cold cache), so it is
cached in this process: ``demo()`` returns the same report and saved directory on every call.
"""

from __future__ import annotations

import atexit
import functools
import json
import math
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from explain.attribution.methods import method_title
from explain.report import Report


@dataclass(frozen=True)
class Demo:
    report: Report
    path: Path  # the saved report directory
    build_seconds: float


@functools.lru_cache(maxsize=1)
def demo() -> Demo:
    from explain.cli._demo import build_demo

    root = Path(tempfile.mkdtemp(prefix="explain-demo-report-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    start = time.perf_counter()
    report = build_demo(quiet=True)
    seconds = time.perf_counter() - start
    return Demo(report, report.save(root), seconds)


# ----------------------------------------------------------------- summary against data/

_QUOTED = re.compile(r"'[^']*'")
_NUMBER = re.compile(r"(?<![\w.])[-+−]?\d[\d,]*(?:\.\d+)?(?:e-?\d+)?%?")


def _renderings(value) -> set[str]:
    """The ways a finding may print ``value``."""
    if isinstance(value, (bool, np.bool_)) or value is None:
        return set()
    try:
        number = float(value)
    except (TypeError, ValueError):
        return set()
    if not math.isfinite(number):
        return set()
    out = {f"{number:.3f}", f"{number:+.3f}", f"{number:.2g}", f"{100 * number:.1f}%",
           f"{number:.4g}", f"{number:g}"}
    if number.is_integer():
        out |= {f"{int(number)}", f"{int(number):,}"}
    return out


def _numbers(text: str) -> list[str]:
    """Numbers quoted in ``text``, outside quoted names ('hidden.0', 'weat1')."""
    return [n.lstrip("+−-") if not n.startswith(("+", "-", "−")) else n.replace("−", "-")
            for n in _NUMBER.findall(_QUOTED.sub("", text))]


def summary_problems(path: Path, *, constants=()) -> list[str]:
    """Every card and finding of the saved report at ``path`` checked against the tables in
    its ``data/``: it names its source tables, each decimal it quotes is a value of those
    tables, every integer is a count they can give (at most their rows) or a stated constant;
    and the cards and findings about faithfulness agree with the explanations and scorecard
    tables. Returns the problems (empty: consistent)."""
    from explain.report import findings

    manifest = json.loads((path / "manifest.json").read_text())
    allowed = {str(c) for c in constants} | {
        str(findings.MIN_COUNT), f"{findings.ALPHA}", f"{findings.NEGLIGIBLE_EFFECT_SIZE}",
        "0.5", "95%", "0", "95"} | {f"{n:g}" for n in _negligible_sizes(manifest)}
    problems = []
    # a card's text: its value when it is text ("6 of 6"), its label and note; a numeric value
    # is compared with the table's values below
    entries = [("finding", f["text"], f) for f in manifest["findings"]] + [
        ("card", f"{m['value'] if isinstance(m['value'], str) else ''} {m['name']} "
                 f"{m.get('note') or ''}", m) for m in manifest["metrics"]]
    for what, text, entry in entries:
        if not entry.get("sources"):
            problems.append(f"{what} names no source table: {text!r}")
            continue
        tables = [pd.read_csv(path / "data" / f"{s}.csv") for s in entry["sources"]]
        known = set(allowed)
        rows = max(len(t) for t in tables)
        for table in tables:
            for value in [*table.select_dtypes("number").to_numpy().ravel(), *_derived(table)]:
                known |= _renderings(value)
        value = entry.get("value")
        if what == "card" and not isinstance(value, str):
            values = [v for t in tables for v in [*t.select_dtypes("number").to_numpy().ravel(),
                                                  *_derived(t)]]
            if not any(v == value for v in values):
                problems.append(f"card {entry['name']!r} shows {value!r}, which is not a value "
                                f"of {', '.join(entry['sources'])}")
        for number in _numbers(text):
            plain = number.replace(",", "").rstrip("%").lstrip("+-")
            if number in known or (plain.isdigit() and int(plain) <= rows
                                   and not number.endswith("%")):
                continue
            problems.append(f"{what} quotes {number}, which is not in "
                            f"{', '.join(entry['sources'])}: {text!r}")
        kind = entry.get("kind")
        if kind == "beats_random":
            problems += _check_beats_random(entry, tables[0])
        if kind == "scorecard":
            problems += _check_scorecard(text, tables[0])
        if kind == "importance":
            problems += _check_importance(text, tables[0])
    problems += _check_scorecard_agrees(path, manifest)
    return problems


def _negligible_sizes(manifest: dict) -> set[float]:
    """The negligible sizes the analyses used (their parameters, as findings quote them)."""
    return {a["parameters"][key] for a in manifest["analyses"] if a.get("parameters")
            for key in ("negligible_difference", "negligible_change") if key in a["parameters"]}


def _derived(table: pd.DataFrame) -> list[float]:
    """Values a finding may compute from a predictions table (recomputed here): accuracy, the
    majority class's share, the share of each true class predicted as each class."""
    if not {"correct", "label_name", "predicted_name"} <= set(table.columns):
        return []
    values = [table["correct"].mean(), table["label_name"].value_counts(normalize=True).max()]
    for _, rows in table.groupby("label_name"):
        values += rows["predicted_name"].value_counts(normalize=True).tolist()
    return values


def _check_beats_random(metric: dict, table: pd.DataFrame) -> list[str]:
    beats = int((table["comprehensiveness"] > table["random_comprehensiveness"]).sum())
    expected = f"{beats} of {len(table)}"
    problems = []
    if metric["value"] != expected:
        problems.append(f"card {metric['name']!r} reads {metric['value']!r}; its table gives "
                        f"{expected}")
    if "integrated gradients" not in metric["name"]:
        problems.append(f"card {metric['name']!r} does not name its method")
    return problems


def _check_scorecard(text: str, table: pd.DataFrame) -> list[str]:
    if "method" not in table:
        return [f"a scorecard statement computed from a table that is not a scorecard: "
                f"{text!r}"]
    problems = []
    for row in table.itertuples(index=False):
        name = method_title(row.method)
        worse = row.comprehensiveness <= row.random_comprehensiveness
        parts = re.split(r"no better than a random ranking on average", text, maxsplit=1,
                         flags=re.I)
        said_worse = len(parts) == 2 and name in parts[1]
        if worse and not said_worse:
            problems.append(f"{name} is no better than random in the scorecard, but the "
                            f"summary does not say so: {text!r}")
        if not worse and said_worse:
            problems.append(f"{name} beats random in the scorecard, but the summary says it "
                            f"does not: {text!r}")
    return problems


def _check_importance(text: str, table: pd.DataFrame) -> list[str]:
    from explain.report import findings

    problems = []
    if (table["count"] < findings.MIN_COUNT).any():
        problems.append(f"the importance table has units under {findings.MIN_COUNT} "
                        f"occurrences")
    fragments = [w for w in table["label"].astype(str)
                 if not re.fullmatch(r"[^\W_](?:.*[^\W_])?", w) or w in ("t", "s", "doesn")]
    if fragments:
        problems.append(f"the importance table has word fragments: {fragments}")
    for predicted, group in table.groupby("predicted_label"):
        top = group.sort_values("mean_abs_score", ascending=False, kind="stable").iloc[0]
        quoted = f"'{top['label']}' for predictions of '{predicted}' (mean {top['mean_score']:+.3f}"
        if quoted not in text:
            problems.append(f"the top unit for {predicted!r} is {top['label']!r}, not what "
                            f"the finding says: {text!r}")
    return problems


def _check_scorecard_agrees(path: Path, manifest: dict) -> list[str]:
    """Integrated gradients in the scorecard is the computation of the explanations table: on
    their common rows both must beat (or not beat) the random ranking alike."""
    problems = []
    ids = [a["id"] for a in manifest["analyses"]]
    for scorecard_id in (i for i in ids if i.endswith("-scorecard-per-explanation")):
        prefix = scorecard_id.removesuffix("-scorecard-per-explanation")
        explained = pd.read_csv(path / "data" / f"{prefix}-what-each-explanation-says.csv")
        scored = pd.read_csv(path / "data" / f"{scorecard_id}.csv")
        scored = scored[scored["method"] == "integrated_gradients"]
        both = explained.merge(scored, on="row", suffixes=("", "_scorecard"))
        if both.empty:
            problems.append(f"{scorecard_id}: no rows in common with the explanations table")
        for row in both.itertuples(index=False):
            if (row.comprehensiveness > row.random_comprehensiveness) != \
                    (row.comprehensiveness_scorecard > row.random_comprehensiveness_scorecard):
                problems.append(f"row {row.row}: the explanations table and the scorecard "
                                f"disagree on whether integrated gradients beats random")
    return problems
