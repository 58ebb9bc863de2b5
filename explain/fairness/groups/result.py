"""``AuditResult``: the tables of an audit, their wording (``summary``) and their figures."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd

from ...checks import one_of
from ...results import Result
from ..intervals import interval_errors
from .measures import DISPARITIES

__all__ = ["AuditResult"]


class AuditResult(Result):
    """What ``audit`` found.

    ``by_group`` (also ``to_frame()``): one row per sensitive feature x group x class x metric:
    ``sensitive_feature`` (a column, or columns joined by ``" & "`` for an intersection),
    ``group`` (its value; values joined by ``", "`` for an intersection), ``class_label`` (the
    class audited one vs rest), ``metric`` (a key of ``GROUP_METRICS``), ``value`` (fairlearn's
    estimate), ``ci_low``, ``ci_high`` (Wilson score interval at ``confidence``; NaN for
    ``count`` and where the denominator is 0), ``count`` (rows in the group), ``denominator``
    (the rows the rate is computed over: positives for TPR/FNR, negatives for FPR, predicted
    positives for precision, else ``count``; a small denominator explains a wide interval),
    ``small_group`` (fewer than ``min_group_size`` rows).

    ``disparities``: one row per sensitive feature x class x measure (``DISPARITIES``):
    ``difference`` and ``ratio`` (fairlearn's ``between_groups`` values over the compared
    groups: all groups unless ``exclude_small_groups``), ``high_group`` and ``low_group`` (the
    groups with the largest and smallest value behind the difference), ``test`` (how the
    permutation test of "no disparity" permutes the group labels), ``p_value`` (its p-value:
    every group has the same rate under its null), ``p_value_holm`` (Holm-adjusted over all rows), ``significant``
    (``p_value_holm < alpha``), ``conclusion`` (a key of ``CONCLUSIONS``), ``n_groups`` (groups
    compared), ``small_groups`` (compared groups under ``min_group_size``, with their rows: the
    noisiest part of the difference), ``excluded_groups`` (groups left out by
    ``exclude_small_groups``). A difference has no interval (see the module docstring); the
    intervals of disparities are the signed ``contrasts``.

    ``contrasts``: one row per sensitive feature x class x metric x compared group other than
    the reference: ``metric`` (selection rate, and with labels TPR, FPR, precision and accuracy:
    the rates behind ``DISPARITIES``), ``group``, ``reference_group`` (``reference_groups``, by
    default the largest group), ``value``, ``reference_value``, ``difference`` (``value -
    reference_value``), ``ci_low``, ``ci_high`` (Newcombe interval at ``confidence``),
    ``denominator``, ``reference_denominator``, ``small_group``.

    ``calibration``: per group and score bin: ``bin``, ``bin_low``, ``bin_high``,
    ``mean_score``, ``observed_rate``, ``count``. ``threshold_sweep``: per group, threshold and
    metric: ``threshold``, ``metric``, ``value``. Both are empty without scores.
    """

    PLOTS: Mapping[str, str] = MappingProxyType({
        "metrics": "per-group selection rate, TPR, FPR and precision with Wilson intervals",
        "disparities": "difference between groups of each disparity measure, with its "
                       "Holm-adjusted permutation p-value",
        "contrasts": "each group minus the reference group, per rate, with Newcombe intervals",
        "calibration": "observed positive rate against mean score per bin, one line per group",
        "thresholds": "selection rate, TPR and FPR of each group as the threshold moves "
                      "(one panel per rate, in a figure of its own: no ax)",
    })
    PLOT_OPTIONS: Mapping[str, tuple[str, ...]] = MappingProxyType({
        "metrics": ("sensitive_feature", "class_label"), "disparities": ("class_label",),
        "contrasts": ("sensitive_feature", "class_label"),
        "calibration": ("sensitive_feature", "class_label"),
        "thresholds": ("sensitive_feature", "class_label"),
    })

    def __init__(self, *, by_group: pd.DataFrame, disparities: pd.DataFrame,
                 contrasts: pd.DataFrame, calibration: pd.DataFrame,
                 threshold_sweep: pd.DataFrame, meta: dict[str, Any]) -> None:
        self.by_group = by_group
        self.disparities = disparities
        self.contrasts = contrasts
        self.calibration = calibration
        self.threshold_sweep = threshold_sweep
        self.meta = meta
        self._freeze()

    @property
    def sensitive_features(self) -> list[str]:
        return list(dict.fromkeys(self.by_group["sensitive_feature"]))

    @property
    def class_labels(self) -> list[str]:
        return list(dict.fromkeys(self.by_group["class_label"]))

    def to_frame(self) -> pd.DataFrame:
        """``by_group`` (see the class docstring for its columns)."""
        return self.by_group.copy()

    def tables(self) -> dict[str, pd.DataFrame]:
        """``by_group``, ``disparities``, ``contrasts``, and with scores ``calibration`` and
        ``threshold_sweep``."""
        tables = {"by_group": self.by_group, "disparities": self.disparities,
                  "contrasts": self.contrasts, "calibration": self.calibration,
                  "threshold_sweep": self.threshold_sweep}
        return {name: table.copy() for name, table in tables.items()
                if name not in ("calibration", "threshold_sweep") or len(table)}

    def applicable_plots(self, sensitive_feature: str | None = None) -> tuple[str, ...]:
        """The kinds drawn for ``sensitive_feature`` (default: the first) and the first class:
        contrasts need two compared groups, calibration scores and labels, thresholds scores."""
        frames = {"contrasts": self.contrasts, "calibration": self.calibration,
                  "thresholds": self.threshold_sweep}
        return tuple(kind for kind in self.PLOTS if kind not in frames
                     or len(self._pick(frames[kind], sensitive_feature, None)[0]))

    def _pick(self, frame: pd.DataFrame, sensitive_feature: str | None,
              class_label: str | None) -> tuple[pd.DataFrame, str, str]:
        feature = sensitive_feature or self.sensitive_features[0]
        if feature not in self.sensitive_features:
            raise ValueError(f"unknown sensitive_feature {feature!r}; valid: "
                             f"{', '.join(map(repr, self.sensitive_features))}")
        label = class_label if class_label is not None else self.class_labels[0]
        if str(label) not in self.class_labels:
            raise ValueError(f"unknown class_label {label!r}; valid: {self.class_labels}")
        chosen = frame[(frame["sensitive_feature"] == feature) &
                       (frame["class_label"] == str(label))]
        return chosen, feature, str(label)

    def difference(self, measure: str = "demographic_parity", *,
                   sensitive_feature: str | None = None, class_label: str | None = None) -> float:
        """Largest minus smallest group value of ``measure`` (a key of ``DISPARITIES``)."""
        return float(self._measure(measure, sensitive_feature, class_label)["difference"])

    def ratio(self, measure: str = "demographic_parity", *,
              sensitive_feature: str | None = None, class_label: str | None = None) -> float:
        """Smallest over largest group value of ``measure`` (a key of ``DISPARITIES``)."""
        return float(self._measure(measure, sensitive_feature, class_label)["ratio"])

    def _measure(self, measure, sensitive_feature, class_label) -> pd.Series:
        one_of(measure, DISPARITIES, "measure")
        rows, _, _ = self._pick(self.disparities, sensitive_feature, class_label)
        rows = rows[rows["measure"] == measure]
        if rows.empty:
            raise ValueError(f"{measure!r} needs true labels; audit was run without label=")
        return rows.iloc[0]

    def summary(self) -> str:
        parameters = self.meta["parameters"]
        parts = []
        rows = self.disparities[self.disparities["measure"] == "demographic_parity"]
        several = len(self.class_labels) > 1
        for row in rows.itertuples():
            text = (f"{row.sensitive_feature}{f' (class {row.class_label})' if several else ''}: "
                    f"demographic parity difference {row.difference:.3f}")
            if np.isfinite(row.p_value_holm):
                text += f" (Holm-adjusted p = {_format_p(row.p_value_holm)}; {row.conclusion})"
            parts.append(text)
        if parameters["n_permutations"]:
            test = (f"{parameters['n_permutations']:,} permutations of the group labels per "
                    f"test, Holm over {parameters['n_tests']} tests, alpha "
                    f"{parameters['alpha']:g}; negligible below "
                    f"{parameters['negligible_difference']:g}")
        else:
            test = "no permutation test"
        text = (f"Group fairness audit ({parameters['n_rows']} rows; {test}): " +
                "; ".join(parts) + ".")
        if parameters["small_groups"]:
            verb = "excluded" if parameters["exclude_small_groups"] else "kept and flagged"
            detail = "; ".join(f"{k}: {v}" for k, v in parameters["small_groups"].items())
            text += (f" Groups under {parameters['min_group_size']} rows ({verb}): "
                     f"{detail}.")
        return text

    # -- figures -------------------------------------------------------------------------------
    def _plot(self, kind: str, *, ax=None, sensitive_feature: str | None = None,
              class_label: str | None = None):
        """Draw ``kind`` (a key of ``PLOTS``) for one sensitive feature (default: the first) and
        one class (default: the first audited)."""
        if kind == "disparities":
            return self._plot_disparities(ax, class_label)
        if kind == "metrics":
            return self._plot_metrics(ax, sensitive_feature, class_label)
        if kind == "contrasts":
            return self._plot_contrasts(ax, sensitive_feature, class_label)
        if kind == "calibration":
            return self._plot_calibration(ax, sensitive_feature, class_label)
        return self._plot_thresholds(ax, sensitive_feature, class_label)

    def _confidence(self) -> str:
        return f"{self.meta['parameters']['confidence'] * 100:g}%"

    def _plot_metrics(self, ax, sensitive_feature, class_label):
        from ...plotting import axes_or_new, style

        rows, feature, label = self._pick(self.by_group, sensitive_feature, class_label)
        wanted = [m for m in ("selection_rate", "true_positive_rate", "false_positive_rate",
                              "precision") if m in set(rows["metric"])]
        groups = list(dict.fromkeys(rows["group"]))
        fig, ax = axes_or_new(ax, max(6.0, 1.1 * len(groups) + 3), 4.0)
        with style():
            width = 0.8 / len(wanted)
            x = np.arange(len(groups))
            palette = ["#4C72B0", "#DD8452", "#55A868", "#C44E52"]
            info = rows.drop_duplicates("group").set_index("group").reindex(groups)
            small = info["small_group"].to_numpy(bool)
            for k, metric in enumerate(wanted):
                part = rows[rows["metric"] == metric].set_index("group").reindex(groups)
                values = part["value"].to_numpy(float)
                err = interval_errors(values, part["ci_low"], part["ci_high"])
                positions = x + (k - (len(wanted) - 1) / 2) * width
                bars = ax.bar(positions, np.nan_to_num(values), width, yerr=err, capsize=2,
                              label=metric.replace("_", " "), color=palette[k % len(palette)],
                              error_kw={"elinewidth": 0.8})
                for bar, is_small, value, position in zip(bars, small, values, positions,
                                                          strict=True):
                    if is_small:  # few rows: drawn faint (its interval shows how wide)
                        bar.set_alpha(0.35)
                        bar.set_hatch("//")
                    if not np.isfinite(value):
                        ax.text(position, 0.01, "n/a", rotation=90, ha="center", va="bottom",
                                fontsize=6, color="grey")
            parameters = self.meta["parameters"]
            ticks = [f"{g}{' †' if is_small else ''}\n(n={int(n)})"
                     for g, n, is_small in zip(groups, info["count"], small, strict=True)]
            ax.set_xticks(x, ticks, rotation=30 if len(groups) > 4 else 0,
                          ha="right" if len(groups) > 4 else "center")
            if small.any():
                where = ("left out of" if parameters["exclude_small_groups"] else "kept in")
                ax.text(1.0, 1.0, f"† fewer than {parameters['min_group_size']} rows: faint, "
                        f"{where} the disparities", transform=ax.transAxes, ha="right",
                        va="bottom", fontsize=7, color="grey")
            ax.set_ylim(0, 1.05)
            ax.set_ylabel("rate")
            ax.set_title(f"Group metrics by {feature} (class {label}; whiskers: "
                         f"{self._confidence()} Wilson intervals)",
                         pad=14 if small.any() else 6)
            ax.legend(ncols=len(wanted), loc="upper center", bbox_to_anchor=(0.5, -0.18 if
                      len(groups) <= 4 else -0.35), frameon=False)
        return fig

    def _plot_disparities(self, ax, class_label):
        from ...plotting import axes_or_new, style

        label = class_label if class_label is not None else self.class_labels[0]
        rows = self.disparities[self.disparities["class_label"] == str(label)]
        labels = [f"{m.replace('_', ' ')} | {f}" for f, m in
                  zip(rows["sensitive_feature"], rows["measure"], strict=True)]
        fig, ax = axes_or_new(ax, 7.5, 0.35 * len(rows) + 1.6)
        with style():
            y = np.arange(len(rows))[::-1]
            values = rows["difference"].to_numpy(float)
            features = list(dict.fromkeys(rows["sensitive_feature"]))
            colours = {f: c for f, c in zip(features, ["#4C72B0", "#DD8452", "#55A868",
                                                        "#8172B3", "#937860"] * 4, strict=False)}
            significant = rows["significant"].to_numpy(bool)
            bars = ax.barh(y, np.nan_to_num(values),
                           color=[colours[f] for f in rows["sensitive_feature"]])
            for bar, flag in zip(bars, significant, strict=True):
                if not flag:  # not significant: faint
                    bar.set_alpha(0.4)
            finite = values[np.isfinite(values)]  # all NaN when no two groups are comparable
            right = max(0.05, float(finite.max()) if finite.size else 0.05)
            for position, value, row in zip(y, values, rows.itertuples(), strict=True):
                note = (f"p = {_format_p(row.p_value_holm)}, {row.conclusion}"
                        if np.isfinite(row.p_value_holm) else row.conclusion)
                ax.text(np.nan_to_num(value) + right * 0.02, position, note, va="center",
                        fontsize=7)
            ax.set_yticks(y, labels)
            ax.axvline(0, color="black", linewidth=0.8)
            parameters = self.meta["parameters"]
            which = ("groups with at least "
                     f"{parameters['min_group_size']} rows" if parameters["exclude_small_groups"]
                     else "all groups")
            ax.set_xlabel(f"largest minus smallest group value ({which}; each group's "
                          f"interval: the contrasts figure)")
            ax.set_xlim(0, right * 1.6)
            ax.set_title(f"Disparities (class {label}; p: permutation test of group labels, "
                         f"Holm-adjusted; faint: not significant at {parameters['alpha']:g})")
        return fig

    def _plot_contrasts(self, ax, sensitive_feature, class_label):
        from ...plotting import axes_or_new, style

        rows, feature, label = self._pick(self.contrasts, sensitive_feature, class_label)
        if rows.empty:
            raise ValueError(f"no contrasts for {feature!r}: fewer than two compared groups")
        metrics = list(dict.fromkeys(rows["metric"]))
        groups = list(dict.fromkeys(rows["group"]))
        fig, ax = axes_or_new(ax, 7.0, 0.16 * len(rows) + 0.2 * len(groups) + 1.5)
        with style():
            palette = ["#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3"]
            ticks, positions = [], []
            position = 0.0
            for group in groups:
                part = rows[rows["group"] == group].set_index("metric")
                small = bool(part["small_group"].iloc[0])
                for k, metric in enumerate(metrics):
                    if metric not in part.index:
                        continue
                    entry = part.loc[metric]
                    value = float(entry["difference"])
                    colour = palette[k % len(palette)]
                    if not np.isfinite(value):  # undefined (e.g. no predicted positives): no dot
                        ax.text(0, -position, " n/a", va="center", ha="left", fontsize=6,
                                color=colour)
                        position += 1
                        continue
                    err = interval_errors(np.array([value]), [entry["ci_low"]],
                                          [entry["ci_high"]])
                    ax.errorbar(value, -position, xerr=err, fmt="o", markersize=3, capsize=2,
                                color=colour, alpha=0.45 if small else 1.0)
                    position += 1
                ticks.append(f"{group}{' †' if small else ''}")
                positions.append(-(position - (len(part) + 1) / 2))
                position += 0.6
            ax.axvline(0, color="black", linewidth=0.8)
            ax.set_yticks(positions, ticks)
            reference = rows["reference_group"].iloc[0]
            ax.set_xlabel(f"group minus reference group {reference!r} "
                          f"({self._confidence()} Newcombe intervals)")
            ax.set_title(f"Contrasts by {feature} (class {label}; † fewer than "
                         f"{self.meta['parameters']['min_group_size']} rows)")
            from matplotlib.lines import Line2D

            # every metric in drawing order, at full colour (a small group's are faint), beside
            # the axes, never over an interval
            handles = [Line2D([], [], color=palette[k % len(palette)], marker="o", markersize=3,
                              label=metric.replace("_", " ")) for k, metric in enumerate(metrics)]
            ax.legend(handles=handles, frameon=False, fontsize=7, loc="upper left",
                      bbox_to_anchor=(1.01, 1.0))
        return fig

    def _group_label(self, feature: str, group: str) -> tuple[str, str]:
        """Legend text with the group's size; small groups are dotted and marked with †."""
        rows = self.by_group[(self.by_group["sensitive_feature"] == feature) &
                             (self.by_group["group"] == group)]
        count = int(rows["count"].iloc[0]) if len(rows) else 0
        small = bool(rows["small_group"].iloc[0]) if len(rows) else False
        return f"{group} (n={count}){' †' if small else ''}", (":" if small else "-")

    def _plot_calibration(self, ax, sensitive_feature, class_label):
        from ...plotting import axes_or_new, style

        rows, feature, label = self._pick(self.calibration, sensitive_feature, class_label)
        if rows.empty:
            raise ValueError("no calibration table: audit needs scores (a model or score=) and "
                             "label=")
        fig, ax = axes_or_new(ax, 5.5, 4.5)
        with style():
            low = float(rows["bin_low"].min())
            high = float(rows["bin_high"].max())
            if low >= 0.0 and high <= 1.0:  # a diagonal only means something for probabilities
                ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=0.8,
                        label="perfect calibration")
            for group, part in rows.groupby("group", sort=True):
                label_text, line = self._group_label(feature, group)
                ax.plot(part["mean_score"], part["observed_rate"], marker="o", markersize=3,
                        label=label_text, linestyle=line)
            ax.set_xlabel("mean predicted score in bin")
            ax.set_ylabel("observed positive rate")
            ax.set_title(f"Calibration by {feature} (class {label}; † dotted: fewer than "
                         f"{self.meta['parameters']['min_group_size']} rows)")
            ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)  # off the curves
        return fig

    def _plot_thresholds(self, ax, sensitive_feature, class_label):
        from ...plotting import new_figure, style

        if ax is not None:
            raise TypeError("plot('thresholds') draws one panel per rate (selection rate, TPR, "
                            "FPR) into a figure of its own and takes no ax; call it without ax")
        rows, feature, label = self._pick(self.threshold_sweep, sensitive_feature, class_label)
        if rows.empty:
            raise ValueError("no threshold sweep: audit needs scores (a model or score=)")
        metrics = [m for m in ("selection_rate", "true_positive_rate", "false_positive_rate")
                   if m in set(rows["metric"])]
        fig, axes = new_figure(4.0 * len(metrics), 3.8, ncols=len(metrics))
        axes = np.atleast_1d(axes)
        threshold = self.meta["parameters"]["threshold"]
        with style():
            for metric, axis in zip(metrics, axes, strict=True):
                part = rows[rows["metric"] == metric]
                for group, g in part.groupby("group", sort=True):
                    label_text, line = self._group_label(feature, group)
                    axis.plot(g["threshold"], g["value"], label=label_text, linestyle=line)
                if threshold is not None:  # None: decisions were not a threshold on scores
                    axis.axvline(threshold, color="grey", linestyle=":", linewidth=0.8)
                axis.set_xlabel("decision threshold on score")
                axis.set_ylabel(metric.replace("_", " "))
                axis.set_ylim(-0.02, 1.02)
                axis.set_title(metric.replace("_", " "))
            # beside the panels, off the curves
            fig.legend(*axes[-1].get_legend_handles_labels(), loc="outside right upper",
                       frameon=False, fontsize=7)
            line = (f"vertical line: threshold {threshold:g}" if threshold is not None
                    else "decisions: highest-probability class")
            fig.suptitle(f"Threshold sweep by {feature} (class {label}; {line}; † dotted: "
                         f"fewer than {self.meta['parameters']['min_group_size']} rows)")
        return fig

    def _repr_html_(self) -> str:
        table = self.disparities.to_html(index=False, border=0, float_format=lambda v: f"{v:.3g}")
        return (f"<div class='explain-audit'>{super()._repr_html_()}"
                f"<details><summary>disparities</summary>{table}</details></div>")


def _format_p(p: float) -> str:
    return f"{p:.2g}" if p >= 0.001 else f"{p:.1e}"
