"""Permutation tests of "no disparity": count tables of permuted group labels, drawn directly
by sequential hypergeometric draws, and each measure's chi-square statistic on them."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["permutation_tables"]

# How each measure's permutation test permutes the group labels: among all rows, within each
# true label, or within each decision (the strata that keep its null hypothesis exact).
_STRATA = {"demographic_parity": "all", "accuracy_parity": "all", "equalized_odds": "label",
           "equal_opportunity": "label", "predictive_parity": "decision"}
_TEST_NAMES = {"all": "permutation of group labels",
               "label": "permutation of group labels within each true label",
               "decision": "permutation of group labels within each decision"}


#: Permutations drawn at once by the audit's tests (their count tables are
#: ``PERMUTATION_CHUNK x groups x 4`` integers); more are drawn chunk after chunk.
PERMUTATION_CHUNK = 100_000


def permutation_tables(codes: np.ndarray, cells: np.ndarray, strata: np.ndarray, *,
                       n_groups: int, n_cells: int, n_permutations: int,
                       rng: np.random.Generator) -> np.ndarray:
    """Count tables ``(n_permutations, n_groups, n_cells)`` of random permutations of the group
    labels ``codes`` within each stratum of ``strata``: entry ``[b, g, c]`` counts the rows of
    cell ``c`` (``cells``, ints in ``[0, n_cells)``) that permutation ``b`` puts in group ``g``.

    No permutation is materialised: within a stratum, a permutation keeps each group's size
    and each cell's size, and its table then has the multivariate hypergeometric distribution,
    drawn group by group and cell by cell with ``rng.hypergeometric``. Cost: one vectorised
    draw per stratum x group x cell, whatever the number of rows.
    """
    table = np.zeros((n_permutations, n_groups, n_cells), dtype=np.int64)
    for stratum in np.unique(strata):
        inside = strata == stratum
        sizes = np.bincount(codes[inside], minlength=n_groups)
        left = np.tile(np.bincount(cells[inside], minlength=n_cells), (n_permutations, 1))
        present = np.flatnonzero(left[0])
        for g in range(n_groups - 1):
            draw = np.full(n_permutations, sizes[g], dtype=np.int64)
            rest = left[:, present].sum(1)
            for c in present[:-1]:
                rest = rest - left[:, c]
                taken = rng.hypergeometric(left[:, c], rest, draw)
                table[:, g, c] += taken
                left[:, c] -= taken
                draw = draw - taken
            table[:, g, present[-1]] += draw
            left[:, present[-1]] -= draw
        table[:, n_groups - 1] += left
    return table


def _chi_square(successes: np.ndarray, trials: np.ndarray) -> np.ndarray:
    """Pearson's chi-square of the groups x (success, failure) table, over the last axis."""
    with np.errstate(all="ignore"):
        pooled = successes.sum(-1, keepdims=True) / trials.sum(-1, keepdims=True)
        expected = trials * pooled
        terms = (successes - expected) ** 2 / (expected * (1.0 - pooled))
    return np.where(np.isfinite(terms), terms, 0.0).sum(-1)


def _statistics(table: np.ndarray) -> dict[str, np.ndarray]:
    """Each measure's test statistic from count tables ``(..., n_groups, 4)`` whose cells are
    ``2 * label + decision``: Pearson's chi-square of group against the measure's outcome, summed
    over its strata (equalized odds: the positives' and the negatives' tables)."""
    n = table.sum(-1)
    pos = table[..., 2] + table[..., 3]
    sel = table[..., 1] + table[..., 3]
    tp = table[..., 3]
    tpr = _chi_square(tp, pos)
    return {"demographic_parity": _chi_square(sel, n),
            "accuracy_parity": _chi_square(table[..., 0] + tp, n),
            "equal_opportunity": tpr,
            "equalized_odds": tpr + _chi_square(table[..., 1], n - pos),
            "predictive_parity": _chi_square(tp, sel)}


def _p_values(y: np.ndarray, p: np.ndarray, codes: np.ndarray, n_groups: int,
              measures: Sequence[str], *, n_permutations: int, seed: Sequence[int]
              ) -> dict[str, float]:
    """Permutation p-value of each measure's "no disparity" (``_STRATA`` says how)."""
    cells = y.astype(np.int64) * 2 + p.astype(np.int64)
    observed = np.zeros((n_groups, 4), dtype=np.int64)
    np.add.at(observed, (codes, cells), 1)
    observed_stat = _statistics(observed)
    out = {}
    for k, scheme in enumerate(dict.fromkeys(_STRATA[m] for m in measures)):
        strata = {"all": np.zeros(len(y), np.int64), "label": y.astype(np.int64),
                  "decision": p.astype(np.int64)}[scheme]
        rng = np.random.default_rng([*seed, k])
        tested = [m for m in measures if _STRATA[m] == scheme]
        extreme = dict.fromkeys(tested, 0)
        # in chunks, so memory stays flat however many permutations are asked for
        for start in range(0, n_permutations, PERMUTATION_CHUNK):
            permuted = _statistics(permutation_tables(
                codes, cells, strata, n_groups=n_groups, n_cells=4,
                n_permutations=min(PERMUTATION_CHUNK, n_permutations - start), rng=rng))
            for measure in tested:
                statistic = float(observed_stat[measure])
                # ties count as at least as extreme; the relative 1e-9 absorbs float noise only
                extreme[measure] += np.count_nonzero(permuted[measure]
                                                     >= statistic * (1 - 1e-9))
        for measure in tested:
            out[measure] = (1.0 + extreme[measure]) / (1.0 + n_permutations)
    return out
