"""Benchmark of the fairness module: WEAT permutation tests and a full COMPAS audit.

    python bench/bench_fairness.py [--rounds 5]

1. WEAT with 100,000 sampled permutations (weat2: instruments vs weapons, 36 target words, so
   the exact test would need C(36, 16) ~ 7e9 partitions): ``explain.fairness.association_test``
   against the straightforward peer implementation that draws one permutation at a time
   (``rng.permutation`` + index sums in a Python loop, measured on 2,000 permutations and
   scaled), and against ``weat()`` end to end (lookup, 10 tests).
2. A full COMPAS audit (race and sex and their intersection; rates with Wilson intervals,
   contrasts with Newcombe intervals, five disparities each with a 9,999-permutation test,
   calibration, threshold sweep): COMPAS's own decisions on all 6,172 rows, and the reference
   ``compas`` model on its 1,235 held-out rows; peer: ``scipy.stats.permutation_test`` of the
   same chi-square statistic of demographic parity for one sensitive column (999 measured,
   scaled to 9,999), against our audit of that column (eight rates, five tested disparities).

Times are the median of ``--rounds`` rounds after one warm-up; ratios are paired per round.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import numpy as np

#: scipy's permutation test reshuffles every row: measure 999 resamples and scale to 9,999.
PEER_PERMUTATIONS = 999
N_PERMUTATIONS = 9999


def _round_times(fn, rounds):
    """Seconds of each of `rounds` calls of `fn`, after one warm-up call."""
    fn()  # warm-up
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def _naive_permutations(s: np.ndarray, nx: int, n: int, seed: int) -> float:
    rng = np.random.default_rng(seed)
    total = s.sum()
    observed = 2 * s[:nx].sum() - total
    hits = 0
    for _ in range(n):
        order = rng.permutation(len(s))
        hits += (2 * s[order[:nx]].sum() - total) >= observed
    return (hits + 1) / (n + 1)


def bench_weat(rounds: int) -> dict:
    from explain import datasets
    from explain.fairness import association_test, weat
    from explain.fairness.association import _normalise

    words, vectors = datasets.word2vec()
    index = {w: i for i, w in enumerate(words)}
    test = datasets.weat_tests()["weat2"]
    sets = []
    for key in ("first_target", "second_target", "first_attribute", "second_attribute"):
        rows = [index[w] for w in test[key]["words"] if w in index]
        sets.append(np.asarray(vectors[rows], dtype=np.float64))
    ours = _round_times(lambda: association_test(*sets, n_permutations=100_000),
                        rounds)
    result = association_test(*sets, n_permutations=100_000)
    targets = _normalise(np.vstack(sets[:2]))
    s = (targets @ _normalise(sets[2]).T).mean(1) - (targets @ _normalise(sets[3]).T).mean(1)
    naive_n = 2_000
    naive = _round_times(lambda: _naive_permutations(s, len(sets[0]), naive_n, 0), rounds)
    naive_scaled = [t * 100_000 / naive_n for t in naive]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        full = _round_times(lambda: weat(), max(1, rounds // 2))
    return {"n_targets": len(s), "p_value": result["p_value"],
            "effect_size": result["effect_size"], "ours": ours, "naive_scaled": naive_scaled,
            "speedup": statistics.median(n / o for n, o in zip(naive_scaled, ours, strict=True)),
            "weat_all_10": full}


def bench_audit(rounds: int) -> dict:
    import explain_models
    import pandas as pd
    from scipy import stats

    import explain
    from explain import datasets
    from explain.fairness import audit

    compas = datasets.compas()

    def own_decisions():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return audit(data=compas, sensitive_features=["race", "sex"], label="two_year_recid",
                         prediction="compas_high_risk", score="decile_score", threshold=5,
                         n_permutations=N_PERMUTATIONS, seed=0)

    groups = pd.factorize(compas["race"])[0]
    decisions = compas["compas_high_risk"].to_numpy().astype(int)

    def chi_square(codes):
        table = np.bincount(codes * 2 + decisions, minlength=2 * (codes.max() + 1))
        table = table.reshape(-1, 2).astype(float)
        expected = table.sum(1, keepdims=True) * table.sum(0, keepdims=True) / table.sum()
        return ((table - expected) ** 2 / expected).sum()

    def scipy_permutation_test():
        return stats.permutation_test((groups,), chi_square, permutation_type="pairings",
                                      n_resamples=PEER_PERMUTATIONS, vectorized=False,
                                      alternative="greater", random_state=0)

    def ours_one_column():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return audit(data=compas, sensitive_features="race", label="two_year_recid",
                         prediction="compas_high_risk", n_permutations=N_PERMUTATIONS,
                         seed=0)

    model = explain.load_model(explain_models.ensure("compas", progress=False))
    heldout = pd.read_csv(explain_models.path("compas") / "heldout.csv")

    def with_model():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return audit(model, heldout, sensitive_features=["race", "sex"],
                         label="two_year_recid", n_permutations=N_PERMUTATIONS, seed=0)

    own = _round_times(own_decisions, rounds)
    ours_one = _round_times(ours_one_column, rounds)
    peer = [t * N_PERMUTATIONS / PEER_PERMUTATIONS
            for t in _round_times(scipy_permutation_test, max(1, rounds // 2))]
    modelled = _round_times(with_model, rounds)
    return {"own_decisions": own, "one_column": ours_one, "scipy_one_test": peer,
            "with_model": modelled, "n_rows": len(compas), "n_heldout": len(heldout),
            "speedup": statistics.median(peer) / statistics.median(ours_one)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    import platform

    import fairlearn
    import scipy
    import torch

    print(f"python {platform.python_version()}, numpy {np.__version__}, torch "
          f"{torch.__version__}, fairlearn {fairlearn.__version__}, scipy {scipy.__version__}, "
          f"{torch.get_num_threads()} torch threads")
    med = statistics.median
    w = bench_weat(args.rounds)
    print(f"WEAT weat2 ({w['n_targets']} target words), 100,000 sampled permutations: "
          f"{med(w['ours']) * 1000:.1f} ms median (fastest {min(w['ours']) * 1000:.1f} ms); "
          f"p = {w['p_value']:.2g}, d = {w['effect_size']:.3f}")
    print(f"  peer (one rng.permutation per permutation, 2,000 measured, scaled to 100,000): "
          f"{med(w['naive_scaled']):.2f} s -> ours is {w['speedup']:.0f}x faster")
    print(f"  weat() end to end, all 10 tests, 100,000 permutations each where sampled: "
          f"{med(w['weat_all_10']) * 1000:.0f} ms")
    a = bench_audit(args.rounds)
    print(f"COMPAS audit, COMPAS's own decisions, {a['n_rows']} rows, race + sex + "
          f"intersection, {N_PERMUTATIONS:,} permutations per disparity, calibration and sweep: "
          f"{med(a['own_decisions']):.2f} s median (fastest {min(a['own_decisions']):.2f} s)")
    print(f"COMPAS audit, reference compas model on {a['n_heldout']} held-out rows (model "
          f"forward included), same analyses: {med(a['with_model']):.2f} s median")
    print(f"  race only, {N_PERMUTATIONS:,} permutations: ours (8 rates, 5 tested disparities) "
          f"{med(a['one_column']):.2f} s vs scipy.stats.permutation_test ({PEER_PERMUTATIONS} "
          f"measured, scaled) {med(a['scipy_one_test']):.2f} s for 1 test -> "
          f"{a['speedup']:.1f}x")


if __name__ == "__main__":
    main()
