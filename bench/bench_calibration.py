"""Calibration of ``explain.audit`` on simulated tables with a known truth.

Each table has 2 or 3 groups (20 to 1,000 rows; a group of 20 rows in most tables), rows drawn
with known per-group base rate, true positive rate and false positive rate, in the middle of
[0, 1] or near 0 and 1. Three scenarios:

* ``null``: every group has the same rates: no disparity of any measure;
* ``label``: base rates differ between groups, TPR and FPR do not: equalized odds and equal
  opportunity hold, demographic parity, predictive parity and accuracy parity do not;
* ``gap``: the largest group's TPR and FPR are 0.25 higher: no measure holds.

Every table goes through ``audit`` with its defaults (9,999 permutations, 95%, alpha 0.05,
Holm over the table's five disparities). Measured: coverage of each interval type (the Wilson
interval of every per-group rate, the Newcombe interval of every contrast with the reference
group) against the true rates; the share of ``significant`` flags on true nulls (false
positives) and on false ones (power); for comparison, the coverage of the intervals the audit
used to print (percentile bootstrap of each rate and of largest minus smallest).

Section ``means`` (``--only means``): the other intervals the probes print, on data with a known
mean (normal and skewed; 2 to 200 units): the counterfactual probe's Student-t interval of the
mean change and its paired tests' false-positive rates, the Wilson interval of the CrowS-Pairs
share, the Student-t intervals of ``attribution_by_group`` and ``global_importance``, each
beside the percentile bootstrap they replaced.

    python bench/bench_calibration.py --tables 200     # per scenario: 600 tables in all
    python bench/bench_calibration.py --only means --reps 1000
"""

from __future__ import annotations

import argparse
import platform
import time
import warnings

import numpy as np
import pandas as pd

SIZES = [(20, 200), (20, 60, 500), (20, 40), (30, 100, 1000), (50, 500)]
METRICS = ("base_rate", "selection_rate", "accuracy", "true_positive_rate",
           "false_positive_rate", "false_negative_rate", "precision")
NOMINAL = 0.95


def rates(rng, n_groups, regime, scenario):
    if regime == "middle":
        base, tpr, fpr = rng.uniform(0.2, 0.8), rng.uniform(0.5, 0.9), rng.uniform(0.1, 0.5)
    else:
        base, tpr, fpr = rng.uniform(0.1, 0.9), rng.uniform(0.9, 0.99), rng.uniform(0.01, 0.1)
    base, tpr, fpr = (np.full(n_groups, v) for v in (base, tpr, fpr))
    if scenario == "label":
        base = rng.uniform(0.1, 0.9, n_groups)
    if scenario == "gap":
        last = np.arange(n_groups) == n_groups - 1
        tpr, fpr = np.minimum(tpr + 0.25 * last, 1.0), np.minimum(fpr + 0.25 * last, 1.0)
    return base, tpr, fpr


def truth(base, tpr, fpr):
    selection = base * tpr + (1 - base) * fpr
    return {"base_rate": base, "selection_rate": selection,
            "accuracy": base * tpr + (1 - base) * (1 - fpr), "true_positive_rate": tpr,
            "false_positive_rate": fpr, "false_negative_rate": 1 - tpr,
            "precision": base * tpr / selection}


def null_holds(true):
    equal = {m: np.ptp(v) < 1e-12 for m, v in true.items()}
    return {"demographic_parity": equal["selection_rate"],
            "equalized_odds": equal["true_positive_rate"] and equal["false_positive_rate"],
            "equal_opportunity": equal["true_positive_rate"],
            "predictive_parity": equal["precision"], "accuracy_parity": equal["accuracy"]}


def percentile_checks(frame, true, rng, n_boot=1000):
    """The previous intervals on the same table: a percentile bootstrap (rows resampled within
    groups) of each group's selection rate and TPR, and of largest minus smallest selection rate."""
    out = []
    groups = sorted(frame["g"].unique())
    sel_draws = []
    for g_index, g in enumerate(groups):
        part = frame[frame["g"] == g]
        for metric, values in (("selection_rate", part["pred"].to_numpy()),
                               ("true_positive_rate", part["pred"][part["y"] == 1].to_numpy())):
            if len(values) == 0:
                continue
            draws = rng.binomial(len(values), values.mean(), n_boot) / len(values)
            if metric == "selection_rate":
                sel_draws.append(draws)
            low, high = np.quantile(draws, [0.025, 0.975])
            out.append({"interval": f"percentile bootstrap, {metric}",
                        "small": len(part) == 20,
                        "covered": low <= true[metric][g_index] <= high})
    spread = np.max(sel_draws, 0) - np.min(sel_draws, 0)
    low, high = np.quantile(spread, [0.025, 0.975])
    out.append({"interval": "percentile bootstrap, max - min selection rate", "small": False,
                "covered": low <= np.ptp(true["selection_rate"]) <= high})
    return out


def run(n_tables: int, seed: int) -> dict:
    from explain.fairness import audit

    coverage, flags, old = [], [], []
    rng = np.random.default_rng(seed)
    started = time.perf_counter()
    for s_index, scenario in enumerate(("null", "label", "gap")):
        for t in range(n_tables):
            sizes = SIZES[t % len(SIZES)]
            regime = "middle" if (t // len(SIZES)) % 2 == 0 else "near 0/1"
            base, tpr, fpr = rates(rng, len(sizes), regime, scenario)
            codes = np.repeat(np.arange(len(sizes)), sizes)
            y = rng.random(len(codes)) < base[codes]
            p = np.where(y, rng.random(len(codes)) < tpr[codes],
                         rng.random(len(codes)) < fpr[codes])
            names = [f"g{i}" for i in range(len(sizes))]
            frame = pd.DataFrame({"g": np.array(names)[codes], "y": y.astype(int),
                                  "pred": p.astype(int)})
            true = truth(base, tpr, fpr)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                result = audit(data=frame, sensitive_features="g", label="y",
                               prediction="pred", seed=s_index * 100_000 + t)
            for row in result.by_group[result.by_group.metric != "count"].itertuples():
                if not np.isfinite(row.ci_low):
                    continue
                value = true[row.metric][names.index(row.group)]
                coverage.append({"interval": f"Wilson, {row.metric}", "regime": regime,
                                 "small": row.count == 20,
                                 "covered": row.ci_low - 1e-12 <= value <= row.ci_high + 1e-12})
            for row in result.contrasts.itertuples():
                if not np.isfinite(row.ci_low):
                    continue
                value = (true[row.metric][names.index(row.group)] -
                         true[row.metric][names.index(row.reference_group)])
                coverage.append({"interval": f"Newcombe, {row.metric}", "regime": regime,
                                 "small": bool(row.small_group) or row.denominator < 20,
                                 "covered": row.ci_low - 1e-12 <= value <= row.ci_high + 1e-12})
            holds = null_holds(true)
            for row in result.disparities.itertuples():
                flags.append({"scenario": scenario, "measure": row.measure,
                              "null": holds[row.measure], "significant": row.significant,
                              "raw_below": row.p_value < 0.05, "sizes": str(sizes)})
            for entry in percentile_checks(frame, true, rng):
                old.append({**entry, "regime": regime, "scenario": scenario})
    return {"coverage": pd.DataFrame(coverage), "flags": pd.DataFrame(flags),
            "old": pd.DataFrame(old), "seconds": time.perf_counter() - started,
            "n_tables": 3 * n_tables}


def compas_timing(rounds: int = 3) -> float:
    from explain import datasets
    from explain.fairness import audit

    compas = datasets.compas()
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        audit(data=compas, sensitive_features=["race", "sex"], label="two_year_recid",
              prediction="compas_high_risk", seed=0)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


# ------------------------------------------------------------------ intervals of means and shares
# The other intervals the fairness probes and attributions print, each on simulated data with
# a known truth: the mean change over templates or sentences (counterfactual), the share of
# CrowS-Pairs pairs won by the stereotypical sentence, a group's mean share of attribution
# (attribution_by_group), a word's mean attribution over its occurrences (global_importance).

def _draws(rng, distribution, shape, centre, scale):
    """Values with mean ``centre``: normal, or skewed (exponential, lognormal, zero-inflated:
    80% zeros and 20% large values, as an identity term that matters in few templates)."""
    if distribution == "normal":
        return centre + scale * rng.standard_normal(shape)
    if distribution == "exponential":
        return centre + scale * (rng.exponential(1.0, shape) - 1.0)
    if distribution == "lognormal":
        return centre + scale * (rng.lognormal(0.0, 1.0, shape) - np.exp(0.5))
    if distribution == "zero-inflated":
        return centre + scale * (np.where(rng.random(shape) < 0.2, 5.0, 0.0) - 1.0)
    raise ValueError(distribution)


def _percentile_of_mean(rng, values, n_boot=1000, chunk=50):
    """The previous intervals: percentile bootstrap of the mean (units resampled), per row."""
    n = values.shape[1]
    low, high = np.empty(len(values)), np.empty(len(values))
    for start in range(0, len(values), chunk):
        index = rng.integers(0, n, size=(n_boot, n))
        means = np.nanmean(values[start:start + chunk][:, index], axis=2)
        low[start:start + chunk], high[start:start + chunk] = np.nanquantile(
            means, [0.025, 0.975], axis=1)
    return low, high


def means_calibration(reps: int, seed: int) -> dict:
    from types import SimpleNamespace

    from scipy import stats

    from explain.attribution.result import AttributionResult
    from explain.fairness.counterfactual import _paired_test
    from explain.fairness.intervals import mean_interval, wilson_interval

    rng = np.random.default_rng(seed)
    started = time.perf_counter()
    rows, tests = [], []

    def record(family, distribution, n, truth, intervals):
        for method, (low, high) in intervals.items():
            covered = (low <= truth) & (truth <= high)
            rows.append({"family": family, "distribution": distribution, "n": n,
                         "method": method, "coverage": float(np.mean(covered)),
                         "reps": len(covered)})

    distributions = ("normal", "exponential", "lognormal", "zero-inflated")
    # counterfactual: the per-unit change of a group against the reference (12 templates, or
    # sentences), a known mean change plus template-to-template variation; the group's mean
    # score (template effect + noise) likewise
    for distribution in distributions:
        for n in (6, 12, 24, 50, 200):
            change = _draws(rng, distribution, (reps, n), 0.05, 0.05)
            record("counterfactual mean change", distribution, n, 0.05,
                   {"student-t": mean_interval(change, NOMINAL),
                    "percentile bootstrap": _percentile_of_mean(rng, change)})
            # the paired tests on a true null: no systematic change; the per-unit change is
            # then the difference of two exchangeable scores (symmetric about 0). Continuous
            # scores only: with ties scipy's Wilcoxon runs a permutation test (0.7 s a call)
            if distribution == "zero-inflated" or n == 200:
                continue
            null = (_draws(rng, distribution, (reps, n), 0.0, 0.05)
                    - _draws(rng, distribution, (reps, n), 0.0, 0.05))
            skewed = _draws(rng, distribution, (reps, n), 0.0, 0.05)  # mean 0, not symmetric
            for name, values in (("exchangeable (symmetric)", null),
                                 ("mean 0, skewed", skewed)):
                for test in ("wilcoxon", "t"):
                    p = np.array([_paired_test(v, test)[1] for v in values])
                    tests.append({"null": name, "distribution": distribution, "n": n,
                                  "test": test, "below_0.05": float(np.mean(p < 0.05)),
                                  "below_0.01": float(np.mean(p < 0.01)), "reps": reps})
    # CrowS-Pairs: n pairs, each won by the stereotypical sentence with probability p
    for n in (20, 50, 100, 200):
        for p in (0.5, 0.6, 0.75, 0.9):
            wins = rng.random((reps, n)) < p
            record("crows-pairs share", f"p={p}", n, p,
                   {"wilson": wilson_interval(wins.sum(1), n, NOMINAL),
                    "percentile bootstrap": _percentile_of_mean(rng, wins.astype(float))})
    # attribution_by_group: shares in [0, 1] (Beta), mean a / (a + b)
    for a, b in ((2.0, 5.0), (0.3, 3.0), (0.5, 0.5)):
        for n in (5, 10, 20, 50, 200):
            shares = rng.beta(a, b, (reps, n))
            low, high = mean_interval(shares, NOMINAL)
            record("attribution_by_group share", f"beta({a:g}, {b:g})", n, a / (a + b),
                   {"student-t": (np.clip(low, 0, 1), np.clip(high, 0, 1)),
                    "percentile bootstrap": _percentile_of_mean(rng, shares)})
    # global_importance, end to end: one label per repetition in a stub result
    for distribution in distributions:
        for n in (2, 3, 5, 10, 30, 100):
            scores = _draws(rng, distribution, (reps, n), 0.1, 0.2)
            frame = pd.DataFrame({"predicted_label": "pos",
                                  "label": np.repeat([f"w{r:05d}" for r in range(reps)], n),
                                  "score": scores.ravel()})
            stub = SimpleNamespace(kind="tabular", to_frame=lambda frame=frame: frame.copy())
            table = AttributionResult.global_importance(stub).sort_values("label")
            record("global_importance mean score", distribution, n, 0.1,
                   {"student-t": (table["ci_low"].to_numpy(), table["ci_high"].to_numpy()),
                    "percentile bootstrap": _percentile_of_mean(rng, scores)})
    # the t interval is scipy's
    x = _draws(rng, "lognormal", (1, 12), 0.0, 1.0)[0]
    reference = stats.ttest_1samp(x, 0.0).confidence_interval(NOMINAL)
    assert np.allclose(mean_interval(x, NOMINAL), (reference.low, reference.high))
    return {"coverage": pd.DataFrame(rows), "tests": pd.DataFrame(tests),
            "seconds": time.perf_counter() - started}


def print_means(reps: int, seed: int) -> None:
    out = means_calibration(reps, seed)
    print(f"\nintervals of means and shares ({reps} repetitions per cell, "
          f"{out['seconds']:.0f} s); coverage of nominal 95%:")
    coverage = out["coverage"]
    for family, part in coverage.groupby("family", sort=False):
        print(f"\n{family}:")
        print(part.pivot_table(index=["distribution", "n"], columns="method",
                               values="coverage", sort=False).to_string(
            float_format=lambda v: f"{v:.3f}"))
    tests = out["tests"]
    print("\ncounterfactual paired tests on true nulls (share of p < 0.05 and < 0.01):")
    print(tests.pivot_table(index=["null", "distribution", "n"], columns="test",
                            values=["below_0.05", "below_0.01"], sort=False).to_string(
        float_format=lambda v: f"{v:.3f}"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tables", type=int, default=200, help="tables per scenario")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reps", type=int, default=1000,
                        help="repetitions per cell of the 'means' section")
    parser.add_argument("--only", choices=("audit", "means"), default=None,
                        help="run one section: the audit's tables, or the intervals of means "
                             "and shares (counterfactual, CrowS-Pairs, attribution_by_group, "
                             "global_importance); default: both")
    args = parser.parse_args()
    import fairlearn
    import scipy

    print(f"python {platform.python_version()}, numpy {np.__version__}, scipy "
          f"{scipy.__version__}, pandas {pd.__version__}, fairlearn {fairlearn.__version__}")
    if args.only != "audit":
        print_means(args.reps, args.seed)
    if args.only == "means":
        return
    out = run(args.tables, args.seed)
    print(f"{out['n_tables']} tables through audit() in {out['seconds']:.0f} s")
    cov = out["coverage"]

    def table(frame, by):
        grouped = frame.groupby(by)["covered"].agg(["mean", "size"])
        grouped["se"] = np.sqrt(grouped["mean"] * (1 - grouped["mean"]) / grouped["size"])
        return grouped

    print("\ncoverage of nominal 95% intervals (all groups):")
    print(table(cov, "interval").to_string(float_format=lambda v: f"{v:.3f}"))
    print("\ncoverage by interval family, small group (20 rows / Newcombe: small side), regime:")
    cov["family"] = cov["interval"].str.split(",").str[0]
    print(table(cov, ["family", "small", "regime"]).to_string(
        float_format=lambda v: f"{v:.3f}"))
    worst = table(cov, ["interval", "small", "regime"])
    print("\nworst cells (interval x small group x regime):")
    print(worst.sort_values("mean").head(6).to_string(float_format=lambda v: f"{v:.3f}"))
    print(worst.sort_values("mean").tail(4).to_string(float_format=lambda v: f"{v:.3f}"))
    flags = out["flags"]
    summary = flags.groupby(["measure", "null"]).agg(
        tables=("significant", "size"), significant=("significant", "mean"),
        raw_p_below_005=("raw_below", "mean"))
    print("\nsignificant flags (Holm, alpha 0.05): null=True rows are false-positive rates, "
          "null=False rows are power")
    print(summary.to_string(float_format=lambda v: f"{v:.3f}"))
    print("\npower in the gap scenario by group sizes:")
    gap = flags[flags.scenario == "gap"]
    print(gap.pivot_table(index="sizes", columns="measure", values="significant",
                          aggfunc="mean").to_string(float_format=lambda v: f"{v:.2f}"))
    old = out["old"]
    print("\nthe previous percentile intervals on the same tables:")
    print(table(old, ["interval", "small", "scenario"]).to_string(
        float_format=lambda v: f"{v:.3f}"))
    print(f"\nCOMPAS audit (race, sex, race & sex; 9,999 permutations per test; 6,172 rows): "
          f"{compas_timing():.2f} s median of 3")


if __name__ == "__main__":
    main()
