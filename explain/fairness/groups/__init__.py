"""Group fairness of a classifier's decisions: ``audit`` and ``AuditResult``.

Modules: ``core`` (``audit``: input checks, decisions, the tables), ``measures`` (the
vocabulary ``GROUP_METRICS``, ``DISPARITIES``, ``CONCLUSIONS`` and the rate arithmetic),
``permutation`` (the tests of "no disparity"), ``result`` (``AuditResult``, its wording and
figures); the intervals are ``explain.fairness.intervals``.

Point estimates come from fairlearn (``MetricFrame`` and its ``demographic_parity_difference``
family) on every group, so our numbers equal fairlearn's on the same inputs. Uncertainty comes
from three methods, each chosen for its coverage with groups as small as 20 rows and rates near
0 or 1 (measured in ``bench/bench_calibration.py``, checked in
``tests/test_fairness_calibration.py``):

* a group's rate: the **Wilson score interval**. Given its denominator (the group's rows,
  positives, negatives or predicted positives), a rate's numerator is binomial, and Wilson's
  interval stays near nominal coverage down to a handful of trials, where a percentile bootstrap
  collapses to ``[0, 0]`` whenever a small group has no event (at 20 rows and a 5% rate that
  happens in 36% of samples, so the bootstrap covers at most 64%).
* a group's rate minus the reference group's (``contrasts``): **Newcombe's hybrid score
  interval** (method 10 of Newcombe, Statistics in Medicine 1998), the square-and-add of the
  two Wilson intervals; the groups are disjoint sets of rows, hence independent.
* "no disparity" (every group has the same rate): a **permutation test of the group labels**
  whose statistic is Pearson's chi-square of group against the measure's outcome (each group
  weighted by its rows, so a group of 3 rows cannot drive the test as it drives a largest minus
  smallest difference). Labels are permuted among all rows (demographic parity, accuracy
  parity: decision or correctness independent of the group), within each true label (equalized
  odds, equal opportunity: decision independent of the group given the label) or within each
  decision (predictive parity), so each test is exact under its own null. The permuted count
  tables are drawn directly, by sequential hypergeometric draws of each group's cell counts
  (the exact distribution of a permutation's counts), so the cost of 9,999 permutations grows
  with the number of groups, not of rows (0.1 s for 2 groups, 0.7 s for 12, on 2 cores).
  p-values are Holm-adjusted over all the disparities of one audit.

A largest-minus-smallest difference gets no interval: it is bounded below by 0 and biased
upwards, so a percentile bootstrap of it excludes 0 even when the groups do not differ.
"""

from __future__ import annotations

from .core import audit
from .measures import CONCLUSIONS, DISPARITIES, GROUP_METRICS
from .permutation import permutation_tables
from .result import AuditResult

__all__ = ["CONCLUSIONS", "DISPARITIES", "GROUP_METRICS", "AuditResult", "audit",
           "permutation_tables"]
