"""The report's attention analysis: attention maps, rollout and head summary of the selected
examples, with the interactive view (transformer text models); for image models built on
``nn.MultiheadAttention`` (vision transformers) the head summary and the rollout of ``[CLS]``
over the patches drawn on a few selected images (``read_images``)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..attention import attention
from ..attention.view import opening_head
from ..text import read_texts
from .data import read_images
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
    if loaded.task == "image-classification":
        if not loaded.family.attention_names(loaded.model, "self"):
            return f"the image model has no attention layers (family {loaded.family.name!r})"
        try:
            read_images(loaded, context.data.head(1))
        except ValueError as error:
            return str(error)
        return None
    if not context.is_text:
        return f"a {loaded.task} model has no attention over words"
    if not loaded.family.attention_names(loaded.model, "self"):
        return f"the model has no attention layers (family {loaded.family.name!r})"
    return None


def _run_images(context: Context) -> None:
    report, part = context.report, context.part
    result = attention(context.model, read_images(context.model, context.data, context.rows)[1])
    report.add(result, section="attention", title=f"{part}: attention of the selected images",
               plots="head_summary", plot_options={"statistic": "entropy"},
               data=result.head_statistics(), view=False,
               caption="Every head summarised by the entropy of its attention rows (low = "
                       "focused), averaged over the selected images; tokens are [CLS] and the "
                       "image patches.")
    rows, cols = result.patch_grid
    for image_id in range(min(3, len(result))):
        frame = pd.DataFrame({"image": image_id + 1, "patch": list(result.tokens(image_id)[1:]),
                              "row": np.repeat(np.arange(rows), cols),
                              "column": np.tile(np.arange(cols), rows),
                              "rollout": result.patch_rollout(image_id).ravel()})
        report.add(result, section="attention",
                   title=f"{part}: rollout over the patches of image {image_id + 1}",
                   plots="rollout_image", plot_options={"image_id": image_id}, data=frame,
                   view=False,
                   caption="Share of the [CLS] token's final representation that each image "
                           "patch accounts for (attention rollout, Abnar & Zuidema 2020), "
                           "renormalised over the patches, drawn over the image.")
    report.add(result, section="attention", title=f"{part}: every head's [CLS] attention, "
               "image 1", plots="heads_image", plot_options={"image_id": 0},
               data=_numbered(result.to_frame(text_id=0), "image"), view=False,
               caption="Attention of the [CLS] token over the image patches in every layer "
                       "and head, for the first selected image.")


def _run(context: Context) -> None:
    if context.model.task == "image-classification":
        _run_images(context)
        return
    report, part, rows = context.report, context.part, context.rows
    texts = read_texts(context.data, context.text_column, rows)
    result = attention(context.model, texts)
    start = opening_head(result)
    layer, head = result.layers[start["layer"]], result.heads[start["head"]]
    report.add(result, section="attention", title=f"{part}: attention of the selected "
               "examples", plots="head_summary", plot_options={"statistic": "entropy"},
               data=result.head_statistics(), view=True,
               caption=f"Interactive view: pick an example (text 1 is example 1), layer and "
                       f"head; click a token to see where it attends. "
                       f"It opens on {start['where']}: {start['reason']}. "
                       f"The heatmap summarises "
                       f"every head by the entropy of its attention rows (low = focused), "
                       f"averaged over the examples.")
    for text_id in range(min(3, len(texts))):
        words = result.words(text_id)
        rollout = result.rollout(text_id, level="word")
        # the token rollout reads from: [CLS] for encoders, the last token for causal LMs
        tokens = result.tokens(text_id)
        position = result.query_index(text_id)
        query = tokens[position] if position == 0 else f"last ({tokens[position]!r})"
        frame = pd.DataFrame({"example": text_id + 1, "word_index": np.arange(len(rollout)),
                              "word": list(words)[:len(rollout)] if len(words) >= len(rollout)
                              else [str(i) for i in range(len(rollout))],
                              "rollout": rollout})
        report.add(result, section="attention",
                   title=f"{part}: rollout of example {text_id + 1}", plots="rollout",
                   plot_options={"text_id": text_id}, data=frame, view=False,
                   caption=f"“{texts[text_id]}” — share of the {query} token's final "
                           f"representation that each word accounts for (attention "
                           f"rollout, Abnar & Zuidema 2020).")
    options = {"text_id": 0, "layer": layer, "head": head, "level": "word"}
    report.add(result, section="attention",
               title=f"{part}: {start['where']}, example 1", plots="head",
               plot_options={**options, "attention": start["kind"]},
               data=_numbered(result.to_frame(**options, attention=start["kind"]), "example"),
               view=False,
               caption=f"Word-level attention of the head the interactive view opens on, "
                       f"{start['reason']}, on "
                       f"example 1 (rows: the word attending; columns: the word attended to).")


def _numbered(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    """``frame`` with its 0-based ``text_id`` column replaced by ``name``, counting from 1 like
    the titles and captions."""
    numbers = frame["text_id"].to_numpy() + 1
    position = frame.columns.get_loc("text_id")
    frame = frame.drop(columns="text_id")
    frame.insert(position, name, numbers)
    return frame


ATTENTION = Analysis(
    "attention", "attention maps, rollout and head summary of the selected examples, with the "
                 "interactive view (transformer text models); rollout over the patches drawn on "
                 "the selected images (vision transformers)", SECTION, _run, _applies)
