"""The report's attention analysis: attention maps, rollout and head summary of the selected
examples, with the interactive view (transformer text models)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..attention import attention
from ..text import read_texts
from .protocol import Analysis, Context
from .sections import Section

__all__ = ["ATTENTION"]

SECTION = Section("attention", "Attention", caveat=(
    "Attention is not explanation. Attention weights say where a head reads from, not why the "
    "model decided; different attention patterns can give the same prediction (Jain & Wallace, "
    "2019; Wiegreffe & Pinter, 2019). Rollout and flow assume that attention mixes linearly "
    "through the residual stream, which is an approximation. Read the attention figures as a "
    "description of the computation, and the attributions as the test of what mattered."))


def _applies(context: Context) -> str | None:
    loaded = context.model
    if not context.is_text:
        return f"a {loaded.task} model has no attention over words"
    if not loaded.family.attention_names(loaded.model, "self"):
        return f"the model has no attention layers (family {loaded.family.name!r})"
    return None


def _run(context: Context) -> None:
    report, part, rows = context.report, context.part, context.rows
    texts = read_texts(context.data, context.text_column, rows)
    result = attention(context.model, texts)
    last = result.layers[-1]
    report.add(result, section="attention", title=f"{part}: attention of the selected "
               "examples", plots="head_summary", plot_options={"statistic": "entropy"},
               data=result.head_statistics(), view=True,
               caption="Interactive view: pick a text, layer and head; click a token to see "
                       "where it attends. The heatmap summarises every head by the entropy "
                       "of its attention rows (low = focused), averaged over the examples.")
    for text_id in range(min(3, len(texts))):
        words = result.words(text_id)
        rollout = result.rollout(text_id, level="word")
        frame = pd.DataFrame({"text_id": text_id, "word_index": np.arange(len(rollout)),
                              "word": list(words)[:len(rollout)] if len(words) >= len(rollout)
                              else [str(i) for i in range(len(rollout))],
                              "rollout": rollout})
        report.add(result, section="attention",
                   title=f"{part}: rollout of example {text_id + 1}", plots="rollout",
                   plot_options={"text_id": text_id}, data=frame, view=False,
                   caption=f"“{texts[text_id]}” — share of the [CLS] token's final "
                           f"representation that each word accounts for (attention "
                           f"rollout, Abnar & Zuidema 2020).")
    report.add(result, section="attention", title=f"{part}: last layer, head 0, example 1",
               plots="head", plot_options={"text_id": 0, "layer": last, "head": 0,
                                           "level": "word"},
               frame_options={"text_id": 0, "layer": last, "head": 0, "level": "word"},
               view=False)


ATTENTION = Analysis(
    "attention", "attention maps, rollout and head summary of the selected examples, with the "
                 "interactive view (transformer text models)", SECTION, _run, _applies)
