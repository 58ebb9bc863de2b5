"""``explain report``: build an offline explanation report (the demo when given no arguments).

    explain report                                   # the demo, into reports/demo/
    explain report --model sentiment --data rotten_tomatoes --label label --name rt
    explain report --config report.toml              # the same keys as the flags
    explain report --from runs/rt-attribute --from runs/rt-score --sensitive group --name rt

``--from DIR`` (repeatable) builds the report from finished ``explain run`` directories
instead of a model and data, over every row of the runs (``explain.report.report_from_run``).
Flags override the configuration file. The report is written atomically into ``<out>/<name>/`` (default ``reports/<name>/``); an existing report is kept unless
``--overwrite``.
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import sys
import time
import tomllib
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

NAME = "report"
HELP = "build an offline explanation report (HTML, figures, data, manifest); no arguments: the demo"

#: Configuration keys (TOML file and flags): key -> (type, help).
CONFIG_KEYS: Mapping[str, tuple[type | tuple[type, ...], str]] = MappingProxyType({
    "model": (str, "reference model name (sentiment, compas, adult, digits, lm, mlm, seq2seq, "
                   "vit, imagenet) or checkpoint directory"),
    "data": (str, "a .csv/.tsv/.parquet/.jsonl file or a built-in dataset (rotten_tomatoes, "
                  "compas, adult, german_credit); default: the model's held-out rows"),
    "text_column": (str, "column of texts (text models; default: the one the model card names "
                         "for its held-out rows, else 'text')"),
    "runs": (list, "finished explain run directories to report on, instead of --model (all "
                   "their rows)"),
    "label": (str, "column of true classes"),
    "sensitive": (list, "sensitive column(s) for group metrics"),
    "decisions": (list, "columns of existing decisions to audit beside the model"),
    "analyses": (list, "analyses to run (default all that apply)"),
    "name": (str, "report name (default: the --out directory's name, else demo or the model "
                  "name)"),
    "title": (str, "report title"),
    "out": (str, "the report's directory (default reports/NAME)"),
    "n_examples": (int, "examples selected for attention and attributions (default 6)"),
    "max_rows": (int, "analyse a seeded random sample of at most this many rows"),
    "format": (list, "extra figure formats: svg, pdf (PNG is always written)"),
    "seed": (int, "seed of every random choice (default 0)"),
    "quiet": (bool, "no progress bars"),
    "overwrite": (bool, "replace an existing report"),
})

_DEFAULTS = {"n_examples": 6, "seed": 0, "quiet": False, "overwrite": False,
             "format": [], "sensitive": [], "decisions": []}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE.toml",
                        help="read these settings from a TOML file (flags override it)")
    parser.add_argument("--model", help=CONFIG_KEYS["model"][1])
    parser.add_argument("--from", dest="runs", action="append", metavar="DIR",
                        help=CONFIG_KEYS["runs"][1] + " (repeat for several)")
    parser.add_argument("--data", help=CONFIG_KEYS["data"][1])
    parser.add_argument("--text-column", dest="text_column", help=CONFIG_KEYS["text_column"][1])
    parser.add_argument("--label", help=CONFIG_KEYS["label"][1])
    parser.add_argument("--sensitive", action="append", metavar="COLUMN",
                        help=CONFIG_KEYS["sensitive"][1] + " (repeat or comma-separate)")
    parser.add_argument("--decisions", action="append", metavar="COLUMN",
                        help=CONFIG_KEYS["decisions"][1])
    parser.add_argument("--analyses", action="append", metavar="NAME",
                        help=CONFIG_KEYS["analyses"][1] + " (repeat or comma-separate)")
    parser.add_argument("--name", help=CONFIG_KEYS["name"][1])
    parser.add_argument("--title", help=CONFIG_KEYS["title"][1])
    parser.add_argument("--out", metavar="DIR", help=CONFIG_KEYS["out"][1])
    parser.add_argument("--n-examples", dest="n_examples", type=int, metavar="N",
                        help=CONFIG_KEYS["n_examples"][1])
    parser.add_argument("--max-rows", dest="max_rows", type=int, metavar="N",
                        help=CONFIG_KEYS["max_rows"][1])
    parser.add_argument("--format", action="append", metavar="FORMAT",
                        help=CONFIG_KEYS["format"][1])
    parser.add_argument("--seed", type=int, help=CONFIG_KEYS["seed"][1])
    parser.add_argument("--quiet", action="store_true", default=None,
                        help=CONFIG_KEYS["quiet"][1])
    parser.add_argument("--overwrite", action="store_true", default=None,
                        help=CONFIG_KEYS["overwrite"][1])


def _split(values) -> list[str]:
    out: list[str] = []
    for value in values or []:
        out.extend(v.strip() for v in str(value).split(",") if v.strip())
    return out


def read_config(path: str | os.PathLike) -> dict[str, Any]:
    """The settings of a TOML file, checked: unknown keys suggest close matches, values are
    type-checked."""
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"no such configuration file: {str(file)!r}")
    try:
        with file.open("rb") as handle:
            raw = tomllib.load(handle)
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"{str(file)!r} is not valid TOML: {error}") from None
    config: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in CONFIG_KEYS:
            close = difflib.get_close_matches(key.replace("-", "_"), list(CONFIG_KEYS), n=3,
                                              cutoff=0.6)
            hint = (f"; did you mean {' or '.join(map(repr, close))}?" if close
                    else f"; valid keys: {', '.join(CONFIG_KEYS)}")
            raise ValueError(f"unknown key {key!r} in {str(file)!r}{hint}")
        kind = CONFIG_KEYS[key][0]
        if kind is list and isinstance(value, str):
            value = [value]
        if (kind is int and isinstance(value, bool)) or not isinstance(value, kind):
            raise ValueError(f"{key!r} in {str(file)!r} must be a {kind.__name__}, got "
                             f"{value!r}")
        config[key] = value
    return config


def settings(args: argparse.Namespace) -> dict[str, Any]:
    """Configuration file, then flags on top, then defaults."""
    merged: dict[str, Any] = read_config(args.config) if args.config else {}
    for key in CONFIG_KEYS:
        value = getattr(args, key, None)
        if value is None:
            continue
        merged[key] = _split(value) if CONFIG_KEYS[key][0] is list else value
    for key in ("sensitive", "decisions", "analyses", "format", "runs"):
        if key in merged:
            merged[key] = _split(merged[key])
    for key, value in _DEFAULTS.items():
        merged.setdefault(key, value)
    return merged


def _default_name(model: str) -> str:
    base = Path(model.rstrip("/")).name or "report"
    return re.sub(r"[^A-Za-z0-9._-]+", "-", base).strip("-.") or "report"


def run(args: argparse.Namespace) -> int:
    config = settings(args)
    if not config["quiet"]:
        return _run(config)
    # --quiet: also silence transformers' weight-loading bars, for this command only
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        return _run(config)
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


def _run(config: dict[str, Any]) -> int:
    from ..checks import one_of
    from ..report import ANALYSES, build_report
    from ._demo import build_demo
    from ._resolve import resolve_model

    for analysis in config.get("analyses") or ():  # before a model is loaded (or trained)
        one_of(analysis, ANALYSES, "analysis")
    runs = config.get("runs") or []
    demo = config.get("model") is None and not runs
    if runs:
        extra = [k for k in ("model", "data", "text_column", "decisions", "analyses",
                             "max_rows") if config.get(k)]
        if extra:
            raise ValueError(f"--from {' --from '.join(runs)} reports on finished runs; "
                             f"{', '.join('--' + k.replace('_', '-') for k in extra)} do not "
                             f"apply to it (they are settings of explain run)")
    if demo:
        extra = [k for k in ("data", "text_column", "label", "sensitive", "decisions", "analyses",
                             "max_rows") if config.get(k)]
        if extra:
            raise ValueError(f"{', '.join('--' + k.replace('_', '-') for k in extra)} need "
                             f"--model; without --model, explain report builds the demo")
    out = Path(config["out"]).expanduser() if config.get("out") else None
    name = config.get("name") or (out.name if out is not None and out.name else None) or (
        "demo" if demo else _default_name(runs[0] if runs else config["model"]))
    target = out if out is not None else Path("reports") / name
    if target.exists() and not config["overwrite"]:
        raise FileExistsError(f"report {str(target)!r} already exists; pass --overwrite to "
                              f"replace it, or another --out")
    start = time.perf_counter()
    # what shapes the report's content (not where it is written, nor how loudly)
    recorded = {k: v for k, v in sorted(config.items())
                if k not in ("quiet", "overwrite", "out")}
    recorded["name"] = name
    if runs:  # the settings of a report from runs (the rest belong to explain run)
        recorded = {k: v for k, v in recorded.items()
                    if k in ("runs", "sensitive", "label", "name", "title", "seed")}
    if runs:
        from ..report import report_from_run

        report = report_from_run(runs, name=name, title=config.get("title"),
                                 sensitive=config["sensitive"] or None,
                                 label=config.get("label"), seed=config["seed"],
                                 config=recorded)
    elif demo:
        report = build_demo(name=name, n_examples=config["n_examples"], seed=config["seed"],
                            quiet=config["quiet"], config=recorded)
        if config.get("title"):
            report.title = config["title"]
    else:
        report = build_report(resolve_model(config["model"], progress=not config["quiet"]),
                              config.get("data"),
                              text_column=config.get("text_column"), label=config.get("label"),
                              sensitive=config["sensitive"], decisions=config["decisions"],
                              name=name, title=config.get("title"),
                              n_examples=config["n_examples"], max_rows=config.get("max_rows"),
                              seed=config["seed"], analyses=config.get("analyses") or None,
                              quiet=config["quiet"], config=recorded)
    path = report.save(target.parent, folder=target.name, overwrite=config["overwrite"],
                       formats=tuple(config["format"]) or ("png",))
    seconds = time.perf_counter() - start
    counts = ", ".join(f"{section} {n}" for section, n in report.sections.items() if n)
    print(f"explain report: wrote {path / 'index.html'} ({counts or 'no items'}; "
          f"{seconds:.0f} s)", file=sys.stdout)
    return 0
