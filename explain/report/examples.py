"""Deterministic choice of the examples a report shows.

Examples are picked round-robin from ranked lists (most confident, least confident,
misclassified, one list per group) until ``n_examples`` distinct rows are chosen. With the
predicted classes known, each pick takes the list's best row among the predicted classes chosen
least often so far, so every predicted class appears and the classes stay balanced (a class
without a candidate in a list is passed over for that pick). Ranks break ties by row position,
so the same predictions always give the same examples.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType

import numpy as np
import pandas as pd

__all__ = ["SELECTION_REASONS", "select_examples"]

#: Why an example was chosen (``reason`` column of ``select_examples``).
SELECTION_REASONS: Mapping[str, str] = MappingProxyType({
    "most_confident": "highest probability of the predicted class",
    "least_confident": "lowest probability of the predicted class (closest to the boundary)",
    "misclassified": "prediction differs from the label (most confident mistakes first)",
    "group": "the most confident mistake of a sensitive group, else its most confident row",
})


def select_examples(confidence: Sequence[float] | np.ndarray, *,
                    predicted: Sequence | np.ndarray | None = None,
                    labels: Sequence | np.ndarray | None = None,
                    groups: Sequence | np.ndarray | None = None,
                    n_examples: int = 8) -> pd.DataFrame:
    """Pick at most ``n_examples`` rows, deterministically.

    ``confidence``: ``(N,)`` probability of the predicted class. ``predicted`` and ``labels``:
    ``(N,)`` class indices or names (both needed for misclassified examples). ``groups``:
    ``(N,)`` sensitive-group values (one list per group). With ``predicted``, every pick is
    the list's best row among the least-chosen predicted classes (see the module docstring).

    Returns a DataFrame with columns ``row`` (position in the inputs), ``reason`` (a key of
    ``SELECTION_REASONS``), ``group`` (the group for ``reason == "group"``, else empty),
    ``confidence``; in selection order.
    """
    if isinstance(n_examples, bool) or not isinstance(n_examples, int) or n_examples < 0:
        raise ValueError(f"n_examples must be a non-negative int, got {n_examples!r}")
    confidence = np.asarray(confidence, dtype=float)
    n = confidence.shape[0]
    if confidence.ndim != 1:
        raise ValueError(f"confidence must be one value per row, got shape {confidence.shape}")
    for name, values in (("predicted", predicted), ("labels", labels), ("groups", groups)):
        if values is not None and len(values) != n:
            raise ValueError(f"{name} has {len(values)} values but confidence has {n}")
    # stable sorts: ties keep row order
    order_high = np.argsort(-confidence, kind="stable")
    order_low = np.argsort(confidence, kind="stable")
    lists: list[tuple[str, str, list[int]]] = [
        ("most_confident", "", order_high.tolist()),
        ("least_confident", "", order_low.tolist()),
    ]
    wrong = None
    if predicted is not None and labels is not None:
        wrong = np.asarray(predicted, dtype=object) != np.asarray(labels, dtype=object)
        lists.append(("misclassified", "", [i for i in order_high.tolist() if wrong[i]]))
    if groups is not None:
        group_values = np.asarray([str(g) for g in groups], dtype=object)
        for group in sorted(set(group_values.tolist())):
            members = [i for i in order_high.tolist() if group_values[i] == group]
            if wrong is not None:
                members = [i for i in members if wrong[i]][:1] + members
            lists.append(("group", group, members))
    classes = None if predicted is None else \
        np.unique(np.asarray(predicted, dtype=object), return_inverse=True)[1].ravel()
    counts = None if classes is None else np.zeros(int(classes.max()) + 1 if n else 0, dtype=int)
    chosen: list[tuple[int, str, str]] = []
    seen = np.zeros(n, dtype=bool)
    ranked = [np.asarray(rows, dtype=np.int64) for _, _, rows in lists]
    while len(chosen) < min(n_examples, n):
        progressed = False
        for k, (reason, group, _) in enumerate(lists):
            if len(chosen) >= n_examples:
                break
            rows = ranked[k][~seen[ranked[k]]]
            ranked[k] = rows  # drop the rows already chosen
            if not len(rows):
                continue
            if counts is not None:  # the best row among the least-chosen classes it has
                row_counts = counts[classes[rows]]
                rows = rows[row_counts == row_counts.min()]
            row = int(rows[0])
            seen[row] = True
            if counts is not None:
                counts[classes[row]] += 1
            chosen.append((row, reason, group))
            progressed = True
        if not progressed:
            break
    return pd.DataFrame({
        "row": pd.Series([c[0] for c in chosen], dtype="int64"),
        "reason": pd.Series([c[1] for c in chosen], dtype=object),
        "group": pd.Series([c[2] for c in chosen], dtype=object),
        "confidence": pd.Series([float(confidence[c[0]]) for c in chosen], dtype="float64"),
    })
