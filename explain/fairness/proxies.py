"""Proxies of a sensitive feature, and how much of each prediction falls on sensitive inputs.

``proxies``: which columns carry information about a sensitive column, even when the sensitive
column itself is not an input (COMPAS without race): mutual information between each feature
and the sensitive column (scikit-learn's ``mutual_info_classif``: exact counting for discrete
features, a nearest-neighbour estimate for numeric ones), normalised by the entropy of the
sensitive column so 1 means "determines it" and 0 "independent".

``attribution_by_group``: with ``explain.attribute``, the share of each prediction's absolute
attribution that falls on the given features (tabular) or identity terms (text), summarised per
group of a sensitive column, with a Student-t interval of each group's mean share.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd

from ..checks import as_names, check_columns
from ..results import Result, TableResult, make_meta
from ..text import read_texts
from ._common import check_confidence, loaded_model
from .intervals import interval_errors, mean_interval

__all__ = ["AttributionByGroupResult", "ProxyResult", "attribution_by_group", "proxies"]


def _entropy(codes: np.ndarray) -> float:
    p = np.bincount(codes) / len(codes)
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def proxies(data: pd.DataFrame, sensitive_feature: str, *, model: Any = None,
            features: Sequence[str] | None = None, encoded: bool = False,
            n_neighbors: int = 3, seed: int = 0) -> ProxyResult:
    """Rank features by how much they reveal ``sensitive_feature``.

    ``features``: the columns to rank (default: the model's input columns when ``model`` is a
    tabular ``LoadedModel`` with an encoder, else every other column). ``encoded``: rank the
    model's encoded inputs (one-hot columns separately) instead of raw columns.
    """
    from sklearn.feature_selection import mutual_info_classif

    check_columns(data, {"sensitive": sensitive_feature}, where="the data")
    model = loaded_model(model, analysis="proxies")
    target = data[sensitive_feature]
    if target.isna().any():
        raise ValueError(f"sensitive column {sensitive_feature!r} has missing values")
    codes, groups = pd.factorize(target.astype(str), sort=True)
    if len(groups) < 2:
        raise ValueError(f"sensitive column {sensitive_feature!r} has one group "
                         f"({groups[0]!r}); nothing to predict")
    if encoded:
        if model is None or model.encoder is None:
            raise ValueError("encoded=True needs a tabular model with an encoder")
        matrix = model.encode_frame(data).numpy().astype(np.float64)
        names = list(model.feature_names)
        discrete = np.array([("=" in n) for n in names])
    else:
        if features is None:
            features = (model.encoder.columns if model is not None and model.encoder is not None
                        else [c for c in data.columns if c != sensitive_feature])
        names = check_columns(data, {"feature": as_names(features, "features")},
                              where="the data")
        if sensitive_feature in names:
            raise ValueError(f"{sensitive_feature!r} is the sensitive column itself; leave it "
                             f"out of features")
        columns, discrete = [], []
        for name in names:
            values = data[name]
            if values.isna().any():
                raise ValueError(f"feature {name!r} has missing values; fill or drop them")
            if pd.api.types.is_numeric_dtype(values) and values.nunique() > 10:
                columns.append(values.to_numpy(np.float64))
                discrete.append(False)
            else:
                columns.append(pd.factorize(values.astype(str), sort=True)[0].astype(np.float64))
                discrete.append(True)
        matrix = np.column_stack(columns)
        discrete = np.asarray(discrete)
    mi = mutual_info_classif(matrix, codes, discrete_features=discrete, n_neighbors=n_neighbors,
                             random_state=seed)
    entropy = _entropy(codes)
    table = pd.DataFrame({"feature": names, "mutual_information": mi,
                          "normalized_mutual_information": mi / entropy if entropy > 0 else np.nan,
                          "discrete": discrete})
    table = table.sort_values("mutual_information", ascending=False, kind="stable") \
        .reset_index(drop=True)
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    parameters = {"sensitive_feature": sensitive_feature, "encoded": encoded,
                  "n_neighbors": n_neighbors, "groups": list(groups), "n_rows": len(data)}
    return ProxyResult(table, meta=make_meta(model, method="proxy-mutual-information",
                                             parameters=parameters, seed=seed))


class ProxyResult(TableResult):
    """Features ranked by mutual information with a sensitive column.

    ``to_frame()``: one row per feature: ``rank``, ``feature``, ``mutual_information`` (nats),
    ``normalized_mutual_information`` (divided by the sensitive column's entropy; 0..1),
    ``discrete`` (counted exactly rather than estimated by nearest neighbours).
    """

    PLOTS: Mapping[str, str] = MappingProxyType({
        "top_proxies": "normalised mutual information of the top features with the sensitive "
                       "column",
    })
    PLOT_OPTIONS: Mapping[str, tuple[str, ...]] = MappingProxyType({"top_proxies": ("top",)})

    def tables(self) -> dict[str, pd.DataFrame]:
        return {"proxies": self.table.copy()}

    def summary(self) -> str:
        top = self.table.iloc[0]
        return (f"Top proxy of {self.meta['parameters']['sensitive_feature']!r}: "
                f"{top.feature} (normalised MI {top.normalized_mutual_information:.3f})")

    def _plot(self, kind: str, *, ax=None, top: int = 15):
        from ..plotting import axes_or_new, style

        table = self.table.head(top)
        fig, ax = axes_or_new(ax, 6.0, 0.35 * len(table) + 1.5)
        with style():
            y = np.arange(len(table))[::-1]
            ax.barh(y, table["normalized_mutual_information"], color="#4C72B0")
            ax.set_yticks(y, table["feature"])
            ax.set_xlabel("mutual information / entropy of the sensitive column")
            ax.set_title(f"Proxies of {self.meta['parameters']['sensitive_feature']!r}")
        return fig


def attribution_by_group(model: Any, data: pd.DataFrame, *, sensitive_feature: str,
                         features: Sequence[str] | None = None, text: str | None = None,
                         terms: Sequence[str] | None = None, method: str = "integrated_gradients",
                         target: Any = None, confidence: float = 0.95, batch_size: int = 32) -> AttributionByGroupResult:
    """Share of each prediction's absolute attribution that falls on ``features`` (tabular: raw
    column names, their one-hot inputs together) or on ``terms`` (text: words in the ``text``
    column), with its mean per group of ``sensitive_feature``.

    The interval of a group's mean share is Student-t over its rows at ``confidence``
    (``explain.fairness.intervals.mean_interval``), clipped to [0, 1] where a share
    lives: the percentile bootstrap used before covers less than 95% for small groups and
    skewed shares, the t interval less so (bench/RESULTS.md).

    Uses ``explain.attribute(model, inputs, method=method, target=target)``.
    """
    from ..attribution import attribute

    confidence = check_confidence(confidence)
    model = loaded_model(model, analysis="attribution_by_group")
    check_columns(data, {"sensitive": sensitive_feature}, where="the data")
    if model.is_text:
        if text is None or not terms:
            raise ValueError("a text model needs text=COLUMN and terms=[identity words]")
        check_columns(data, {"text": text}, where="the data")
        result = attribute(model, read_texts(data, text), method=method, target=target,
                           batch_size=batch_size, faithfulness=False, progress=False)
        wanted = {t.lower() for t in terms}
        kind = "terms"
    else:
        if not features:
            raise ValueError("pass features=[columns] whose share of the attribution to measure "
                             "(e.g. the proxies of the sensitive column)")
        result = attribute(model, data, method=method, target=target, batch_size=batch_size,
                           faithfulness=False, progress=False)
        wanted = set(as_names(features, "features"))
        kind = "features"
    frame = result.to_frame()
    labels = frame["label"].astype(str)
    if kind == "terms":
        frame = frame[frame["unit"] == "word"]
        labels = frame["label"].astype(str)
        hit = labels.str.lower().map(lambda w: re.sub(r"\W", "", w) in wanted)
    else:
        hit = labels.map(lambda f: f in wanted or f.split("=")[0] in wanted)
    frame = frame.assign(magnitude=frame["score"].abs(), on_target=hit.to_numpy())
    totals = frame.groupby("input_id")["magnitude"].sum()
    on = frame[frame["on_target"]].groupby("input_id")["magnitude"].sum().reindex(
        totals.index, fill_value=0.0)
    per_item = (on / totals.where(totals > 0)).sort_index()
    shares = pd.DataFrame({"row": per_item.index, "share": per_item.to_numpy(float)})
    shares["group"] = data[sensitive_feature].astype(str).to_numpy()[shares["row"].to_numpy()]
    rows = []
    for group, part in shares.groupby("group", sort=True):
        values = part["share"].to_numpy(float)
        low, high = mean_interval(values, confidence)
        rows.append({"group": group, "n_rows": len(values),
                     "mean_share": float(np.nanmean(values)),
                     "ci_low": float(np.clip(low, 0.0, 1.0)),
                     "ci_high": float(np.clip(high, 0.0, 1.0))})
    parameters = {"sensitive_feature": sensitive_feature, "method": method,
                  kind: sorted(wanted), "interval": "student-t", "confidence": confidence}
    return AttributionByGroupResult(shares, pd.DataFrame(rows),
                                    meta=make_meta(model, method="attribution-by-group",
                                                   parameters=parameters))


class AttributionByGroupResult(Result):
    """Share of attribution on sensitive inputs, by group.

    ``to_frame()``: one row per input: ``row``, ``share`` (|attribution| on the chosen
    features or terms / total |attribution|; NaN for an input without attribution), ``group``.
    ``by_group``: ``group``, ``n_rows``, ``mean_share`` (over the rows with a share), ``ci_low``,
    ``ci_high`` (Student-t interval of the mean share, clipped to [0, 1]).
    """

    PLOTS: Mapping[str, str] = MappingProxyType({
        "by_group": "mean share of attribution on the sensitive inputs per group, with intervals",
    })
    PLOT_OPTIONS: Mapping[str, tuple[str, ...]] = MappingProxyType({"by_group": ()})

    def __init__(self, shares: pd.DataFrame, by_group: pd.DataFrame, *, meta: dict) -> None:
        self.shares = shares
        self.by_group = by_group
        self.meta = meta
        self._freeze()

    def to_frame(self) -> pd.DataFrame:
        return self.shares.copy()

    def tables(self) -> dict[str, pd.DataFrame]:
        return {"shares": self.shares.copy(), "by_group": self.by_group.copy()}

    def _plot(self, kind: str, *, ax=None):
        from ..plotting import axes_or_new, style

        table = self.by_group
        fig, ax = axes_or_new(ax, 6.0, 0.4 * len(table) + 1.5)
        with style():
            y = np.arange(len(table))[::-1]
            values = table["mean_share"].to_numpy(float)
            err = interval_errors(values, table["ci_low"], table["ci_high"])
            ax.barh(y, values, xerr=err, capsize=3, color="#4C72B0")
            ax.set_yticks(y, [f"{g} (n={n})" for g, n in zip(table["group"], table["n_rows"],
                                                             strict=True)])
            ax.set_xlim(0, 1)
            chosen = self.meta["parameters"].get("features") or self.meta["parameters"].get(
                "terms") or []
            shown = ", ".join(chosen[:4]) + (" ..." if len(chosen) > 4 else "")
            ax.set_xlabel(f"share of |attribution| on {shown}")
            ax.set_title(f"Attribution on sensitive inputs by "
                         f"{self.meta['parameters']['sensitive_feature']} "
                         f"({self.meta['parameters']['method']})")
        return fig
