"""The report's alignment analysis: the cross attention of an encoder-decoder scored against the
gold word alignment of its data (an ``alignment`` column of Pharaoh strings beside the source
texts and a ``target`` column), with the random-alignment baseline, the best head's figure and
the per-head heatmap. Not registered by default (``register_analysis(ALIGNMENT)``)."""

from __future__ import annotations

from ..attention.alignment import alignment_scores
from ..attention.capture import attention
from ..text import read_texts
from .protocol import Analysis, Context
from .sections import Section

__all__ = ["ALIGNMENT", "MAX_ROWS"]

#: Rows scored (the first ones of the data): AER is a corpus statistic, not one per example.
MAX_ROWS = 64

SECTION = Section("alignment", "Alignment with the known word alignment", caveat=(
    "The alignment error rate (Och & Ney 2003, sure links only) scores the argmax source word "
    "of each target word against the gold links; with one link per target word it cannot reach "
    "0 when a target word has several gold links (precision is the fairer reading then). A "
    "head that aligns well shows where the decoder reads, not that the model needs it: head "
    "importance and attributions test that."))


def _applies(context: Context) -> str | None:
    loaded, data = context.model, context.data
    if loaded.task != "seq2seq-lm":
        return f"alignment scoring needs an encoder-decoder LM; this is a {loaded.task!r} model"
    missing = [c for c in ("target", "alignment") if c not in data.columns]
    if missing or context.text_column is None:
        return (f"alignment scoring needs source texts and the columns 'target' and 'alignment' "
                f"(Pharaoh 'i-j' links); the data lacks {', '.join(missing) or 'a text column'}")
    return None


def _run(context: Context) -> None:
    report, part = context.report, context.part
    rows = list(range(min(MAX_ROWS, len(context.data))))
    sources = read_texts(context.data, context.text_column, rows)
    targets = read_texts(context.data, "target", rows)
    alignments = context.data["alignment"].iloc[rows].fillna("").astype(str).tolist()
    scores = alignment_scores(attention(context.model, sources, targets=targets), alignments)
    layer, head, aer = scores.best_head
    baseline = float(scores.to_frame()["baseline_aer"].iloc[0])
    report.add(scores, section="alignment", title=f"{part}: alignment error rate per head",
               plots="heads", caption=f"AER of the argmax source word of each target word, "
               f"over the first {len(rows)} rows, for every cross-attention head, the head mean "
               f"of each layer, the overall mean and the rollout through the encoder; random "
               f"alignment {baseline:.2f}.")
    table = report.last_id
    report.add(scores, section="alignment", title=f"{part}: best head on example 1",
               plots="best_head", plot_options={"example": 0},
               caption=f"Cross attention of layer {layer}, head {head} (the head with the "
                       f"lowest AER) on the first row, “{sources[0]}”, with its gold word "
                       f"alignment.")
    report.add_metric(f"{part}: best cross-attention head AER", aer,
                      note=f"layer {layer}, head {head}; random alignment {baseline:.2f}",
                      sources=table, kind="alignment", part=part)
    report.add_finding(f"{part}: cross-attention head {head} of layer {layer} aligns target "
                       f"words to their source words with AER {aer:.2f}, against "
                       f"{baseline:.2f} for a random alignment.", sources=table,
                       kind="alignment", part=part)


ALIGNMENT = Analysis(
    "alignment", "alignment error rate of cross attention against a known word alignment "
                 "(encoder-decoder LMs with 'target' and 'alignment' columns)",
    SECTION, _run, _applies)
