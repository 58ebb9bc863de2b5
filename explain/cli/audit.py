"""``explain audit``: group fairness of a model's decisions, or of decisions already in a file.

    explain audit compas --sensitive race,sex --label two_year_recid --out audit/
    explain audit adult --data adult.csv --sensitive sex,race --label income_over_50k --out a/
    explain audit sentiment --data reviews.csv --text-column text --sensitive group --out a/
    explain audit --data compas.csv --label two_year_recid --prediction compas_high_risk \\
        --sensitive race --out audit/                      # no model: audit existing decisions
    explain audit --from runs/compas-score --sensitive race,sex --label label --out audit/
                                                           # every row of a finished score run

``--from DIR`` audits the scores of an ``explain run score`` directory
(``explain.run.aggregate.audit_run``): the same tables as auditing the model on those rows.

Writes ``by_group.csv``, ``disparities.csv``, ``contrasts.csv``, ``calibration.csv``,
``threshold_sweep.csv``
(when there are scores), ``meta.json`` and one PNG per figure into ``--out`` (written to a
staging directory and moved into place, ``_output.Outputs``, so a failure never leaves half the
files).
"""

from __future__ import annotations

import argparse
from typing import Any

NAME = "audit"
HELP = "group fairness audit of a model or of existing decisions (tables and figures)"

_READERS = (".csv", ".tsv", ".parquet", ".jsonl")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", nargs="?", metavar="MODEL",
                        help="reference model (compas, adult, sentiment) or checkpoint "
                             "directory; omit to audit --prediction/--score columns")
    parser.add_argument("--from", dest="from_run", metavar="DIR",
                        help="a finished `explain run score` directory: audit its scored rows "
                             "(instead of MODEL and --data)")
    parser.add_argument("--data", metavar="FILE",
                        help=f"table to audit ({', '.join(_READERS)}) or a built-in dataset "
                             f"(compas, adult); default: a reference model's held-out rows")
    parser.add_argument("--sensitive", required=True, metavar="COL[,COL]",
                        help="sensitive column(s); several are also audited as intersections")
    parser.add_argument("--label", metavar="COL", help="column of true outcomes")
    parser.add_argument("--prediction", metavar="COL", help="column of existing decisions")
    parser.add_argument("--score", metavar="COL", help="column of existing scores")
    parser.add_argument("--text-column", "--text", dest="text", metavar="COL",
                        help="column of texts (text models)")
    parser.add_argument("--positive-label", dest="positive_label", metavar="VALUE",
                        help="label value that counts as positive when labels are not 0/1")
    parser.add_argument("--threshold", type=float, default=None,
                        help="decision threshold on scores (default 0.5, for scores in [0, 1] "
                             "only: other scores need one)")
    parser.add_argument("--n-permutations", dest="n_permutations", type=int, default=9999,
                        help="permutations of the group labels per test of 'no disparity' "
                             "(default 9999; 0 skips the tests)")
    parser.add_argument("--alpha", type=float, default=0.05,
                        help="significance level of the Holm-adjusted tests (default 0.05)")
    parser.add_argument("--negligible-difference", dest="negligible_difference", type=float,
                        default=0.02, help="a significant difference below this is called "
                                           "negligible (default 0.02)")
    parser.add_argument("--reference-group", dest="reference_groups", action="append",
                        default=[], metavar="COL=GROUP",
                        help="group the others are contrasted with (default: the largest); "
                             "repeat for several columns")
    parser.add_argument("--min-group-size", dest="min_group_size", type=int, default=30,
                        help="smaller groups are flagged small_group (default 30)")
    parser.add_argument("--exclude-small-groups", dest="exclude_small_groups",
                        action="store_true",
                        help="leave groups under --min-group-size out of the disparities and "
                             "contrasts (default: keep them, as fairlearn does)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the permutations (default 0)")
    parser.add_argument("--proxies", action="store_true",
                        help="also rank the columns by mutual information with each sensitive "
                             "column (proxies)")
    from ._output import add_output_arguments

    add_output_arguments(parser, default_out=None)


def reference_groups(specs: list[str]) -> dict[str, str]:
    """``["race=Caucasian", "sex=Female"]`` -> ``{"race": "Caucasian", "sex": "Female"}``."""
    out = {}
    for spec in specs:
        column, sep, group = spec.partition("=")
        if not sep or not column.strip() or not group.strip():
            raise ValueError(f"--reference-group {spec!r} is not COL=GROUP (e.g. "
                             f"--reference-group race=Caucasian)")
        out[column.strip()] = group.strip()
    return out


def run(args: argparse.Namespace) -> int:
    import warnings

    from ..checks import as_names
    from ..errors import ExplainWarning
    from ..fairness import audit, proxies
    from ._output import Outputs, figure_formats, read_table, slug
    from ._resolve import resolve_model

    if args.from_run is not None:
        given = [flag for flag, value in (("MODEL", args.model), ("--data", args.data),
                                          ("--prediction", args.prediction),
                                          ("--score", args.score), ("--text-column", args.text),
                                          ("--positive-label", args.positive_label))
                 if value is not None]
        if given:
            raise ValueError(f"--from {args.from_run} audits the run's own scores; "
                             f"{', '.join(given)} do not apply to it")
    outputs = Outputs(args.out, overwrite=args.overwrite, formats=figure_formats(args.format))
    data = read_table(args.data, args.model) if args.from_run is None else None
    positive: Any = args.positive_label
    if positive is not None and args.model is None and args.label is not None:
        # a CSV reads 1 as an int: match the column's type
        column = data[args.label]
        if column.dtype.kind in "iu" and positive.lstrip("-").isdigit():
            positive = int(positive)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ExplainWarning)
        # once: audit and proxies
        loaded = resolve_model(args.model, progress=not args.quiet) if args.model else None
        options = dict(threshold=args.threshold, n_permutations=args.n_permutations,
                       alpha=args.alpha, negligible_difference=args.negligible_difference,
                       reference_groups=reference_groups(args.reference_groups),
                       min_group_size=args.min_group_size,
                       exclude_small_groups=args.exclude_small_groups, seed=args.seed)
        if args.from_run is not None:
            from ..run.aggregate import audit_run

            result = audit_run(args.from_run, sensitive_features=args.sensitive,
                               label=args.label, **options)
        else:
            result = audit(loaded, data, sensitive_features=args.sensitive, label=args.label,
                           prediction=args.prediction, score=args.score, text=args.text,
                           positive_label=positive, **options)
    for warning in caught:
        print(f"warning: {warning.message}")
    for name, table in result.tables().items():
        outputs.table(name, table)
    outputs.json("meta", result.meta)
    outputs.figure("disparities", result.plot("disparities"))
    for feature in result.sensitive_features:
        for kind in result.applicable_plots(sensitive_feature=feature):
            if kind != "disparities":  # one figure over every feature, above
                outputs.figure(f"{kind}_{slug(feature)}",
                               result.plot(kind, sensitive_feature=feature))
    if args.proxies:
        if args.from_run is not None:  # the input columns the run kept
            from ..run import read_manifest
            from ..run.aggregate import scored_rows

            kept = read_manifest(args.from_run)["config"]["keep"]
            data = scored_rows(args.from_run, kept).drop(columns="row")
        for column in as_names(args.sensitive, "sensitive"):
            exclude = {column, args.label, args.prediction, args.score, args.text}
            pool = (loaded.encoder.columns if loaded is not None and loaded.encoder is not None
                    else list(data.columns))
            features = [c for c in pool if c not in exclude]
            ranked = proxies(data, column, model=loaded, features=features, seed=args.seed)
            outputs.table(f"proxies_{slug(column)}", ranked.to_frame())
            outputs.figure(f"proxies_{slug(column)}", ranked.plot())
    written = outputs.write()
    print(result.summary())
    columns = ["sensitive_feature", "measure", "difference", "ratio", "p_value_holm",
               "conclusion"]
    print(result.disparities[columns].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"wrote {len(written)} files to {args.out}")
    return 0
