"""``AttributionResult``: scores, trust numbers, summaries, figures and the notebook view."""

from __future__ import annotations

import html
import math
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd

from ..checks import positive_int, probability
from ..plotting import diverging_norm
from ..results import Result, make_meta
from ..text import fold_scores
from .inputs import item_offsets
from .methods import METHODS, method_title

__all__ = ["LEVELS", "AttributionResult", "importance_table"]

#: Row levels of ``AttributionResult.to_frame``.
LEVELS: Mapping[str, str] = MappingProxyType({
    "word": "text: one row per word (token scores summed, explain.text.fold_scores)",
    "token": "text: one row per token, special tokens included",
    "feature": "tabular: one row per raw column (a one-hot group is one feature)",
    "patch": "image: one row per patch",
    "pixel": "image: one row per pixel",
})


class AttributionResult(Result):
    """Attribution scores of one method for many inputs, with their trust numbers.

    ``to_frame(level=None)`` columns: ``input_id`` (position of the input in the call),
    ``step`` (0, or the continuation token index for causal LMs; for an encoder-decoder the
    index of the explained target token), ``unit`` (a key of ``LEVELS``), ``position`` (word,
    token, feature, patch or pixel index within the input; an encoder-decoder's source),
    ``label`` (the word, token, feature name, patch or pixel ``"row r, col c"``), ``start``,
    ``end`` (character span in the text; -1 otherwise), ``segment`` (0/1 for text pairs, else
    0), ``score`` (signed: positive pushes the target up), ``method``, ``target`` (explained
    label, contrast ``A-B`` or token), ``predicted_label``, ``predicted_score`` (under
    ``output``, by default the probability), ``target_score``, ``convergence_delta``
    (integrated gradients, DeepLift, GradientSHAP; NaN otherwise) and ``truncated``.

    ``explanations()``: one row per explanation with the per-input trust numbers and the
    plain-language ``summary``. ``global_importance()``: dataset-level importance per predicted
    label with Student-t intervals. ``plot(kind)``: a key of ``PLOTS``.
    """

    PLOTS: Mapping[str, str] = MappingProxyType({
        "text": "words coloured by score (diverging colour map centred at zero, with colour bar)",
        "bar": "top-k units of one explanation (input=)",
        "waterfall": "from f(baseline) to f(x), one bar per unit",
        "image": "attribution overlaid on the images",
        "global": "global importance per predicted label with 95% Student-t intervals",
        "deletion": "mean deletion and insertion curves vs a random ranking",
    })
    #: Plot kind -> its options: ``input`` (which explanation, an index into
    #: ``explanations()``), ``top_k`` (units shown), ``max_inputs`` (explanations shown),
    #: ``min_count`` (occurrences of a word or feature, as in ``global_importance``).
    PLOT_OPTIONS: Mapping[str, tuple[str, ...]] = MappingProxyType({
        "text": ("input", "max_inputs"),
        "bar": ("input", "top_k"),
        "waterfall": ("input", "top_k"),
        "image": ("input", "max_inputs"),
        "global": ("top_k", "min_count"),
        "deletion": (),
    })

    def __init__(self, loaded, run, *, trust, parameters: Mapping[str, Any], seed: int,
                 seconds: float) -> None:
        self._loaded = loaded
        self._run = run
        self._trust = trust
        self.kind = run.prepared.kind
        self.method = run.method
        self._completeness = METHODS[run.method].completeness
        self.task = loaded.task
        self.label_names = tuple(loaded.label_names or ())
        self.output = parameters.get("output", "probability")
        self.seconds = float(seconds)
        self._labels = _labeler(loaded)
        self._baseline_token = str(loaded.tokenizer.convert_ids_to_tokens(
            run.prepared.pad_id)) if self.kind == "text" else ""
        self.meta = make_meta(loaded, method=run.method, parameters=parameters, seed=seed)
        self.meta["seconds"] = self.seconds
        self.meta["n_explanations"] = len(run.prepared.items)
        self.meta["modality"] = self.kind
        self._freeze()

    def with_faithfulness(self, trust) -> AttributionResult:
        """A copy of this result with the faithfulness ``trust`` (``trust.measure_faithfulness``
        of its run), its definition recorded in ``meta["parameters"]["faithfulness"]``."""
        parameters = {**self.meta["parameters"], "faithfulness": trust.definition}
        return AttributionResult(self._loaded, self._run, trust=trust, parameters=parameters,
                                 seed=self.meta["seed"], seconds=self.seconds)

    # ---------------------------------------------------------------- bookkeeping

    def __len__(self) -> int:
        return len(self._run.prepared.items)

    def _steps(self) -> list[int]:
        return item_offsets(self._run.prepared.items)

    def _target_label(self, k: int) -> str:
        item = self._run.prepared.items[k]
        return self._labels(item.target, item.contrast)

    def _predicted_label(self, k: int) -> str:
        return self._labels(self._run.predicted[k], -1)

    def units(self, k: int) -> tuple[list[str], np.ndarray]:
        """Labels and scores of explanation ``k`` at its natural level (words, features,
        patches)."""
        run = self._run
        item = run.prepared.items[k]
        if item.kind == "text":
            return list(item.text["words"]), fold_scores(run.unit_scores[k],
                                                         item.text["word_index"])
        return list(item.unit_labels), np.asarray(run.unit_scores[k])

    # ------------------------------------------------------------------- frames

    def _default_level(self) -> str:
        return {"text": "word", "tabular": "feature", "image": "patch"}[self.kind]

    def to_frame(self, level: str | None = None) -> pd.DataFrame:
        """Tidy scores, one row per unit of each explanation (columns in the class docstring)."""
        level = level or self._default_level()
        if level not in LEVELS:
            raise ValueError(f"unknown level {level!r}; valid: {', '.join(LEVELS)}")
        valid = {"text": ("word", "token"), "tabular": ("feature",),
                 "image": ("patch", "pixel")}[self.kind]
        if level not in valid:
            raise ValueError(f"level {level!r} does not apply to a {self.kind} {self.method} "
                             f"result; valid here: {', '.join(valid)}")
        run = self._run
        columns: dict[str, list] = {c: [] for c in (
            "input_id", "step", "unit", "position", "label", "start", "end", "segment", "score",
            "method", "target", "predicted_label", "predicted_score", "target_score",
            "convergence_delta", "truncated")}
        steps = self._steps()
        for k, item in enumerate(run.prepared.items):
            rows = self._unit_rows(k, item, level)
            shared = {"input_id": item.input_id, "step": steps[k], "unit": level,
                      "method": self.method, "target": self._target_label(k),
                      "predicted_label": self._predicted_label(k),
                      "predicted_score": run.predicted_score[k],
                      "target_score": run.target_score[k],
                      "convergence_delta": run.deltas[k], "truncated": bool(item.truncated)}
            for row in rows:
                for key, value in shared.items():
                    columns[key].append(value)
                for key in ("position", "label", "start", "end", "segment", "score"):
                    columns[key].append(row[key])
        frame = pd.DataFrame(columns)
        return frame.astype({"input_id": "int64", "step": "int64", "position": "int64",
                             "start": "int64", "end": "int64", "segment": "int64",
                             "score": "float64", "truncated": "bool"})

    def _unit_rows(self, k: int, item, level: str) -> list[dict]:
        run = self._run
        rows = []
        if level == "token":
            info = item.text
            for t, token in enumerate(info["tokens"]):
                start, end = info["offsets"][t]
                rows.append({"position": t, "label": token,
                             "start": start if not info["special"][t] else -1,
                             "end": end if not info["special"][t] else -1,
                             "segment": max(0, info["segment"][t]),
                             "score": float(run.unit_scores[k][t])})
            return rows
        if level == "word":
            info = item.text
            scores = fold_scores(run.unit_scores[k], info["word_index"])
            seg = {}
            for t, w in enumerate(info["word_index"]):
                if w >= 0:
                    seg.setdefault(w, max(0, info["segment"][t]))
            for w, word in enumerate(info["words"]):
                start, end = info["word_spans"][w]
                rows.append({"position": w, "label": word, "start": start, "end": end,
                             "segment": seg.get(w, 0), "score": float(scores[w])})
            return rows
        if level == "pixel":
            pixel = run.pixel_scores[k]
            height, width = pixel.shape
            for r in range(height):
                for c in range(width):
                    rows.append({"position": r * width + c, "label": f"row {r}, col {c}",
                                 "start": -1, "end": -1, "segment": 0,
                                 "score": float(pixel[r, c])})
            return rows
        for j, (label, score) in enumerate(zip(item.unit_labels, run.unit_scores[k],
                                               strict=True)):
            rows.append({"position": j, "label": label, "start": -1, "end": -1, "segment": 0,
                         "score": float(score)})
        return rows

    def explanations(self) -> pd.DataFrame:
        """One row per explanation: ``input_id``, ``step``, ``input`` (the text, or ``""``),
        ``method``, ``target``, ``predicted_label``, ``predicted_score``, ``target_score``
        (f(x) of the explained output), ``attribution_sum``, ``convergence_delta``,
        ``relative_delta`` (|delta| / |f(x) - f(baseline)|), ``n_steps``, ``surrogate_r2``
        (LIME, KernelSHAP: R^2 of the surrogate on its perturbation samples, weighted by
        LIME's kernel, without KernelSHAP's two constraint coalitions, adjusted for the number
        of features, so it can be negative; NaN, with an ExplainWarning, when there are too
        few samples to estimate it), ``truncated``, the faithfulness columns of ``explain.attribution.FAITHFULNESS``
        (among them ``faithfulness_definition`` and ``beats_random``; absent with
        ``faithfulness=False``), and ``summary`` (the plain-language sentence)."""
        run = self._run
        rows = []
        steps = self._steps()
        for k, item in enumerate(run.prepared.items):
            total = float(np.sum(run.unit_scores[k]))
            delta = run.deltas[k]
            gap = abs(total - delta) if not math.isnan(delta) else float("nan")
            row = {"input_id": item.input_id, "step": steps[k],
                   "input": item.text.get("text", "") if item.kind == "text" else "",
                   "method": self.method, "target": self._target_label(k),
                   "predicted_label": self._predicted_label(k),
                   "predicted_score": run.predicted_score[k], "target_score": run.f_x[k],
                   "attribution_sum": total, "convergence_delta": delta,
                   "relative_delta": abs(delta) / gap if gap and gap > 0 else float("nan"),
                   "n_steps": run.n_steps[k], "surrogate_r2": run.surrogate_r2[k],
                   "truncated": bool(item.truncated)}
            if self._trust is not None:
                row.update(self._trust.metrics[k])
            row["summary"] = self.sentence(k)
            rows.append(row)
        return pd.DataFrame(rows)

    def global_importance(self, *, min_count: int = 1, lowercase: bool = True,
                          confidence: float = 0.95) -> pd.DataFrame:
        """Dataset-level importance of each word or feature, per predicted label.

        Columns: ``predicted_label``, ``label`` (word, lowercased unless ``lowercase=False``, or
        feature), ``count`` (occurrences, at least ``min_count``), ``mean_score`` (mean signed
        score over occurrences), ``mean_abs_score``, ``ci_low``, ``ci_high`` (Student-t interval
        of ``mean_score`` at ``confidence``, over the occurrences: mean +- t(count - 1) standard
        errors; NaN for a single occurrence). Sorted by label, then ``mean_abs_score``
        descending.

        Why Student-t: many labels are seen a few times, and there the percentile bootstrap of
        the mean (used before) covers far less than 95% (0.51 at 2 occurrences, 0.83 at 5,
        0.90 at 10 for normal scores); the t interval is exact for normal scores (0.95) and
        closer for skewed ones, though still under 95% for skewed scores seen a few times
        (0.82-0.92 at 2-10 occurrences), and no interval helps a label whose score is 0 in
        most occurrences and that is seen 2-5 times (0.30-0.67: all of them can be 0)
        (bench/bench_calibration.py, section ``means``; bench/RESULTS.md).
        """



        if self.kind == "image":
            raise ValueError("global importance is for words and features; image patches do not "
                             "mean the same thing across images")
        positive_int(min_count, "min_count", fix="pass e.g. min_count=1")
        probability(confidence, "confidence", fix="pass e.g. confidence=0.95")
        frame = self.to_frame()
        if lowercase and self.kind == "text":
            frame["label"] = frame["label"].str.lower()
        return importance_table(frame, min_count=min_count, confidence=confidence)

    # --------------------------------------------------------------- sentences

    def sentence(self, k: int = 0, *, top: int = 3) -> str:
        """Deterministic plain-language summary of explanation ``k``."""
        run = self._run
        noun = {"text": "words", "tabular": "features", "image": "regions"}[self.kind]
        quantity = {"probability": "p", "logit": "the logit",
                    "log_probability": "the log-probability"}[self.output]
        predicted = self._predicted_label(k)
        target = self._target_label(k)
        p_value = run.predicted_score[k]
        if self.output == "probability":
            head = f"Predicted {predicted} (p = {p_value:.2f})."
        else:
            head = f"Predicted {predicted} ({quantity} = {p_value:.2f})."
        item = run.prepared.items[k]
        if item.contrast >= 0:
            head += f" Explaining {target.replace('-', ' over ', 1)}."
        elif target != predicted:
            head += f" Explaining {target} ({quantity} = {run.target_score[k]:.2f})."
        labels, scores = self.units(k)
        order = np.argsort(-scores, kind="stable")
        toward = [j for j in order if scores[j] > 0][:top]
        against = [j for j in order[::-1] if scores[j] < 0][:top]

        def fmt(j):
            return f"'{labels[j]}' ({_number(scores[j])})"

        name = target.replace("-", " over ", 1) if item.contrast >= 0 else target
        parts = [head]
        toward_text = ", ".join(fmt(j) for j in toward) if toward else "none"
        against_text = ", ".join(fmt(j) for j in against) if against else "none"
        parts.append(f"{noun.capitalize()} pushing toward {name}: {toward_text}; "
                     f"against: {against_text}.")
        if self._trust is not None:
            parts.append(self._faithfulness_sentence(k, noun, quantity))
        delta = run.deltas[k]
        if self._completeness and not math.isnan(delta):
            total = float(np.sum(run.unit_scores[k]))
            gap = abs(total - delta)
            rel = abs(delta) / gap if gap > 0 else float("nan")
            parts.append(f"Completeness error {abs(delta):.1e}"
                         + (f" ({100 * rel:.1f}% of the output change)." if not math.isnan(rel)
                            else "."))
        if not math.isnan(run.surrogate_r2[k]):
            parts.append(f"Surrogate fit R^2 = {run.surrogate_r2[k]:.2f}.")
        if item.truncated:
            parts.append("The input was truncated.")
        return " ".join(parts)

    def _faithfulness_sentence(self, k: int, noun: str, quantity: str) -> str:
        """The comprehensiveness of explanation ``k``, naming its definition."""
        m = self._trust.metrics[k]
        if self._trust.definition == "eraser":
            how = ("ERASER comprehensiveness (the top 1-50% of tokens deleted; probability "
                   "of the explained label)")
            quantity = "p"
        else:
            removed = f"replaced by {self._baseline_token}" if self.kind == "text" \
                else "set to the baseline"
            how = f"AOPC comprehensiveness (the top 10-50% of {noun} {removed})"

        def change(value: float) -> str:
            return f"{'drops' if value >= 0 else 'rises'} by {abs(value):.2f}"

        return (f"Faithfulness, {how}: {quantity} {change(m['comprehensiveness'])} on average "
                f"(random ranking: {change(m['random_comprehensiveness'])}).")

    def sentences(self) -> list[str]:
        """The plain-language summary of every explanation, in order."""
        return [self.sentence(k) for k in range(len(self))]

    def summary(self) -> str:
        n = len(self)
        text = (f"{method_title(self.method)} attributions of {n} "
                f"{'explanation' if n == 1 else 'explanations'}, "
                f"{self.meta['model'].get('name', 'model')}")
        if self._trust is not None and len(self):
            metrics = self._trust.metrics
            comp = np.mean([m["comprehensiveness"] for m in metrics])
            rand = np.mean([m["random_comprehensiveness"] for m in metrics])
            beats = sum(m["beats_random"] for m in metrics)
            text += (f"; {self._trust.definition} comprehensiveness {comp:.3f} (random ranking "
                     f"{rand:.3f}); {beats} of {len(metrics)} beat the random ranking")
        return text

    # ------------------------------------------------------------------ plots

    def _check_kind(self, kind: str | None) -> str:
        if kind is None:
            return {"text": "text", "tabular": "waterfall", "image": "image"}[self.kind]
        kind = super()._check_kind(kind)
        if kind not in self._allowed():
            raise ValueError(f"plot kind {kind!r} does not apply to a {self.kind} "
                             f"{self.method} result; valid here: {', '.join(self._allowed())}")
        return kind

    def _allowed(self) -> tuple[str, ...]:
        return {"text": ("text", "bar", "waterfall", "global", "deletion"),
                "tabular": ("bar", "waterfall", "global", "deletion"),
                "image": ("image", "bar", "waterfall", "deletion")}[self.kind]

    def applicable_plots(self) -> tuple[str, ...]:
        """The kinds this result draws: those of its modality (the default first), without
        ``deletion`` when faithfulness was skipped."""
        default = self._check_kind(None)
        kinds = [default] + [k for k in self._allowed() if k != default]
        return tuple(k for k in kinds if k != "deletion" or self._trust is not None)

    def tables(self) -> dict[str, pd.DataFrame]:
        """``scores`` (``to_frame()``), ``explanations`` and, for text and tabular results,
        ``global_importance``."""
        tables = {"scores": self.to_frame(), "explanations": self.explanations()}
        if self.kind != "image":
            tables["global_importance"] = self.global_importance()
        return tables

    def _plot(self, kind: str, *, ax=None, **options):
        """Draw ``kind`` (a key of ``PLOTS``; options in ``PLOT_OPTIONS``: ``input`` default 0,
        ``top_k`` default 10, ``max_inputs`` default 8, ``min_count`` default 1). Into ``ax``,
        ``image`` draws one image (pass ``max_inputs=1``) and ``global`` one predicted label;
        more are refused there (they need a figure of their own)."""
        for name, example in (("top_k", 10), ("max_inputs", 8), ("min_count", 1)):
            if name in options:
                positive_int(options[name], name, fix=f"pass e.g. {name}={example}")
        position = options.get("input", 0)
        if isinstance(position, bool) or not isinstance(position, int) \
                or not 0 <= position < len(self):
            raise IndexError(f"input={position!r} is out of range; this result holds "
                             f"{len(self)} explanations")
        if ax is not None and kind == "image" \
                and min(len(self) - position, options.get("max_inputs", 8)) > 1:
            raise ValueError("plot('image', ax=...) draws one image into the axes; pass "
                             "max_inputs=1 (and input=), or no ax for several images")
        from . import figures

        return getattr(figures, f"plot_{kind}")(self, ax=ax, **options)

    # ------------------------------------------------------------------ html

    def _repr_html_(self) -> str:
        if self.kind != "text":
            return super()._repr_html_()
        import matplotlib

        from ..plotting import DIVERGING as cmap_name

        cmap = matplotlib.colormaps[cmap_name]
        blocks = []
        shown = min(len(self), 20)
        units = [self.units(k) for k in range(shown)]
        norm = diverging_norm(np.concatenate([s for _, s in units]) if units else [])
        for k, (labels, scores) in enumerate(units):
            item = self._run.prepared.items[k]
            text = item.text["text"]
            spans = item.text["word_spans"]
            pieces, cursor = [], 0
            for w in range(len(labels)):
                start, end = spans[w]
                if start < cursor or end > len(text) or text[start:end] != labels[w]:
                    continue  # a word of the second text of a pair; shown below
                pieces.append(html.escape(text[cursor:start]))
                r, g, b, _ = cmap(norm(scores[w]))
                colour = f"#{int(r * 255):02x}{int(g * 255):02x}{int(b * 255):02x}"
                pieces.append(f"<span title='{scores[w]:+.4f}' style='background:{colour};"
                              f"padding:0 2px;border-radius:2px'>{html.escape(text[start:end])}"
                              f"</span>")
                cursor = end
            pieces.append(html.escape(text[cursor:]))
            blocks.append(f"<p style='line-height:1.9'>{''.join(pieces)}<br/><small>"
                          f"{html.escape(self.sentence(k))}</small></p>")
        more = f"<p><small>{len(self) - shown} more not shown</small></p>" \
            if len(self) > shown else ""
        return ("<div class='explain-result explain-attribution'>"
                f"<p><strong>{html.escape(self.summary())}</strong></p>{''.join(blocks)}{more}"
                "</div>")


def _number(value: float) -> str:
    """Signed, two decimals, or two significant digits for values below 0.01."""
    if value == 0 or abs(value) >= 0.01:
        return f"{value:+.2f}"
    return f"{value:+.1e}"


def _labeler(loaded):
    names = tuple(loaded.label_names or ())
    tokenizer = loaded.tokenizer if loaded.task in ("masked-lm", "causal-lm", "seq2seq-lm") \
        else None

    def label(index: int, contrast: int) -> str:
        if tokenizer is not None:
            return str(tokenizer.convert_ids_to_tokens(int(index)))
        name = names[index] if names and 0 <= index < len(names) else str(index)
        if contrast >= 0:
            other = names[contrast] if names and contrast < len(names) else str(contrast)
            return f"{name}-{other}"
        return name

    return label


def importance_table(frame: pd.DataFrame, *, label: str = "label", min_count: int = 1,
                     confidence: float = 0.95) -> pd.DataFrame:
    """Mean signed ``score`` of each ``label`` per ``predicted_label`` of ``frame`` (one row per
    occurrence), for labels seen at least ``min_count`` times, with the Student-t interval of
    the mean at ``confidence`` (NaN for one occurrence). Columns: ``predicted_label``,
    ``label``, ``count``, ``mean_score``, ``mean_abs_score``, ``ci_low``, ``ci_high``; sorted by
    predicted label, then ``mean_abs_score`` descending."""
    from scipy import stats

    rows = []
    for (predicted, name), group in frame.groupby(["predicted_label", label], sort=True):
        values = group["score"].to_numpy(dtype=float)
        if len(values) < max(min_count, 1):
            continue
        mean = float(values.mean())
        low = high = float("nan")
        if len(values) > 1:
            half = (stats.t.ppf(0.5 + confidence / 2, len(values) - 1)
                    * values.std(ddof=1) / math.sqrt(len(values)))
            low, high = mean - half, mean + half
        rows.append({"predicted_label": predicted, "label": name, "count": len(values),
                     "mean_score": mean, "mean_abs_score": float(np.abs(values).mean()),
                     "ci_low": float(low), "ci_high": float(high)})
    out = pd.DataFrame(rows, columns=["predicted_label", "label", "count", "mean_score",
                                      "mean_abs_score", "ci_low", "ci_high"])
    return out.sort_values(["predicted_label", "mean_abs_score"], ascending=[True, False],
                           kind="stable").reset_index(drop=True)
