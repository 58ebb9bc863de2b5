"""Attention maps: capture, words, rollout and flow, head statistics and head importance.

One function, ``attention(model, texts)``, returns one result, ``AttentionResult``::

    result = explain.attention(model, ["a charming, funny film"])
    result.matrix(0, layer=5, head=3)              # (T, T) numpy, rows sum to 1
    result.rollout(0, level="word")                # share of the first token's rollout per word
    result.head_statistics()                       # one row per (layer, head)
    result.plot("grid")                            # matplotlib Figure
    result.save_html("view.html")                  # the interactive view, one offline file

Capture
    Hugging Face models run one forward with ``output_attentions=True``; this needs eager
    attention (``sdpa`` returns no weights, so any other implementation raises a ``ValueError``
    that says how to load the model instead). Encoder-decoder models give three kinds of maps
    (``ATTENTIONS``): encoder self-attention (``"self"``), decoder self-attention
    (``"decoder"``) and cross attention (``"cross"``, decoder queries x encoder keys); the decoder
    reads ``targets`` (default: the texts themselves) exactly as tokenised, no shift.
    A plain ``nn.Module`` is captured through ``explain.hooks``: every ``nn.MultiheadAttention``
    is asked for per-head weights (``need_weights=True, average_attn_weights=False`` via
    ``edit_inputs``) and its output recorded. Padding is removed: text ``i`` is stored as an array
    of shape ``(n_layers, n_heads, T_i, T_i)`` (``T_i`` real tokens, special tokens included and
    flagged so views can hide them), in float32 or float16.

Words
    ``level="word"`` folds word pieces to the words of the original string (``explain.text``):
    **sum over the key pieces of a word, mean over its query pieces**, so every row still sums
    to 1. Special tokens stay units of their own.

Rollout (Abnar & Zuidema 2020)
    Per layer ``A' = 0.5 * mean_heads(A) + 0.5 * I``, rows renormalised; the rollout is the
    product ``A'_L @ ... @ A'_1``. Row ``q`` says how much of the last layer's token ``q`` comes
    from each input token. Needs every layer and head captured.

Flow (Abnar & Zuidema 2020)
    The layers form a graph: node ``(l, t)`` for layer ``l = 0..L`` (0 = the input) and token
    ``t``; an edge from ``(l, i)`` to ``(l - 1, j)`` with capacity ``A'_l[i, j]``. The flow of
    query ``q`` to input token ``j`` is the maximum flow from ``(L, q)`` to ``(0, j)``; the row is
    then normalised to sum to 1 (as in the paper's code). Capacities are scaled to integers
    (``FLOW_SCALE``) for ``scipy.sparse.csgraph.maximum_flow``. Cost: a graph of ``(L + 1) * T``
    nodes and ``L * T**2`` edges and one max-flow per input token, i.e. ``T`` max-flows of
    ``O(L * T**2)`` edges for one query row; inputs are limited to ``FLOW_MAX_TOKENS`` tokens.

Head statistics (per layer and head, averaged over all query rows of a text, then over texts)
    see ``HEAD_STATISTICS``.

Head importance
    ``head_importance(model, texts)`` zeroes one head's slice of the input of the attention
    output projection (BERT ``attention.output.dense``, GPT-2 ``attn.c_proj``, ...) through
    ``explain.hooks.edit_inputs`` (for ``nn.MultiheadAttention`` the head's contribution is
    subtracted from the module's output, which is the same thing) and reports the drop of the
    model's score for a target: a class logit (default: the predicted class) for classifiers, the
    mean log-probability of the text's own tokens for language models.
"""

from __future__ import annotations

import hashlib
import inspect
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import torch
from torch import nn

from . import hooks
from .results import Result, make_meta
from .text import TextBatch, encode_texts, fold_matrix, fold_scores, model_max_length, word_units

__all__ = ["ATTENTIONS", "DTYPES", "FLOW_MAX_TOKENS", "HEAD_STATISTICS", "LEVELS", "SIDES",
           "AttentionResult", "attention", "attention_flow", "attention_rollout",
           "head_importance"]

#: Kinds of attention maps a result can hold.
ATTENTIONS: Mapping[str, str] = MappingProxyType({
    "self": "self-attention of the encoder (or of the only stack of a decoder-only model)",
    "decoder": "self-attention of the decoder of an encoder-decoder model",
    "cross": "cross attention: decoder queries x encoder keys",
})
#: Levels at which maps are read.
LEVELS: Mapping[str, str] = MappingProxyType({
    "token": "the tokenizer's tokens (word pieces)",
    "word": "words of the original string: sum over key pieces, mean over query pieces",
})
#: Which input a token list belongs to (``tokens(..., side=...)``, ``words(..., side=...)``).
SIDES: Mapping[str, str] = MappingProxyType({
    "source": "the texts (the encoder's input, or the only input)",
    "target": "the decoder's input of an encoder-decoder model",
})
#: Storage precisions.
DTYPES: Mapping[str, torch.dtype] = MappingProxyType({"float32": torch.float32,
                                                      "float16": torch.float16})
#: Per-head statistics (``head_statistics()`` columns, ``plot("head_summary", statistic=...)``).
HEAD_STATISTICS: Mapping[str, str] = MappingProxyType({
    "entropy": "entropy of an attention row (nats); low = focused, log(T) = uniform",
    "mean_distance": "attention-weighted mean |query - key| distance (tokens)",
    "special_share": "share of attention to special tokens ([CLS], [SEP], ...)",
    "previous_share": "share of attention to the previous token",
    "self_share": "share of attention to the query token itself",
})
#: Longest input (tokens) ``attention_flow`` accepts: T max-flows over L*T^2 edges per row.
FLOW_MAX_TOKENS = 64
#: Capacities are multiplied by this and rounded to integers for the max-flow solver.
FLOW_SCALE = 1 << 20

_PROJECTION_SUFFIXES = (".attention.output.dense", ".attn.c_proj", ".self_attn.out_proj",
                        ".self_attn.o_proj", ".attention.out_lin", ".SelfAttention.o",
                        ".attn.out_proj", ".attention.o_proj")


# --------------------------------------------------------------------------- derived views


def _layer_means(maps: np.ndarray) -> np.ndarray:
    maps = np.asarray(maps, dtype=np.float64)
    if maps.ndim == 4:
        maps = maps.mean(axis=1)
    if maps.ndim != 3 or maps.shape[-1] != maps.shape[-2]:
        raise ValueError(f"attention maps must have shape (layers, heads, T, T) or (layers, T, T), "
                         f"got {maps.shape}")
    return maps


def _residual(layer_map: np.ndarray) -> np.ndarray:
    augmented = 0.5 * layer_map + 0.5 * np.eye(layer_map.shape[-1])
    return augmented / augmented.sum(axis=-1, keepdims=True)


def attention_rollout(maps: np.ndarray) -> np.ndarray:
    """Attention rollout of one text: ``(layers, heads, T, T)`` or ``(layers, T, T)`` -> ``(T, T)``.

    ``A'_l = rownorm(0.5 * mean_heads(A_l) + 0.5 * I)``, result ``A'_L @ ... @ A'_1``: row ``q``
    is the share of the last layer's token ``q`` that each input token accounts for (sums to 1).
    """
    layers = _layer_means(maps)
    rollout = np.eye(layers.shape[-1])
    for layer_map in layers:
        rollout = _residual(layer_map) @ rollout
    return rollout


def attention_flow(maps: np.ndarray, *, query: int) -> np.ndarray:
    """Attention flow from the last layer's token ``query`` to each input token: ``(T,)``.

    Max-flow over the layer graph (see the module docstring) with residual-augmented capacities,
    normalised to sum to 1. Limited to ``FLOW_MAX_TOKENS`` tokens.
    """
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import maximum_flow

    layers = _layer_means(maps)
    n_layers, length = layers.shape[0], layers.shape[-1]
    if length > FLOW_MAX_TOKENS:
        raise ValueError(f"attention flow is limited to {FLOW_MAX_TOKENS} tokens (it solves T "
                         f"max-flows over L*T^2 edges per query); this text has {length}. Use "
                         f"rollout, or pass a shorter text or max_length={FLOW_MAX_TOKENS}")
    if not isinstance(query, (int, np.integer)) or not 0 <= query < length:
        raise ValueError(f"query {query!r} is out of range; valid: 0..{length - 1}")
    rows, cols, caps = [], [], []
    for layer in range(1, n_layers + 1):
        capacity = np.rint(_residual(layers[layer - 1]) * FLOW_SCALE).astype(np.int64)
        i, j = np.nonzero(capacity)
        rows.append(layer * length + i)
        cols.append((layer - 1) * length + j)
        caps.append(capacity[i, j])
    n_nodes = (n_layers + 1) * length
    graph = csr_matrix((np.concatenate(caps).astype(np.int32),
                        (np.concatenate(rows), np.concatenate(cols))), shape=(n_nodes, n_nodes))
    source = n_layers * length + int(query)
    values = np.array([maximum_flow(graph, source, j).flow_value for j in range(length)],
                      dtype=np.float64)
    total = values.sum()
    return values / total if total > 0 else values


def _head_statistics(maps: np.ndarray, special: Sequence[bool]) -> dict[str, np.ndarray]:
    """Per (layer, head) statistics of one text's self-attention ``(L, H, T, T)``."""
    a = np.asarray(maps, dtype=np.float64)
    length = a.shape[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.where(a > 0, np.log(np.where(a > 0, a, 1.0)), 0.0)
    stats = {
        "entropy": -(a * logs).sum(-1).mean(-1),
        "special_share": a[..., np.asarray(special, dtype=bool)].sum(-1).mean(-1),
    }
    if a.shape[-2] != length:
        # Cross attention: queries and keys are different sequences, so positions do not compare.
        for key in ("mean_distance", "self_share", "previous_share"):
            stats[key] = np.full(a.shape[:2], np.nan)
        return stats
    positions = np.arange(length)
    distance = np.abs(positions[:, None] - positions[None, :])
    stats["mean_distance"] = (a * distance).sum(-1).mean(-1)
    stats["self_share"] = np.diagonal(a, axis1=-2, axis2=-1).mean(-1)
    stats["previous_share"] = (np.diagonal(a, offset=-1, axis1=-2, axis2=-1).mean(-1)
                               if length > 1 else np.zeros(a.shape[:2]))
    return stats


# --------------------------------------------------------------------------- the result


@dataclass(frozen=True)
class _Side:
    """Per-text token bookkeeping of the encoder (``source``) or decoder (``target``) input."""

    texts: tuple[str, ...]
    tokens: tuple[tuple[str, ...], ...]
    special: tuple[tuple[bool, ...], ...]
    unit_index: tuple[tuple[int, ...], ...]
    unit_labels: tuple[tuple[str, ...], ...]
    unit_special: tuple[tuple[bool, ...], ...]
    truncated: tuple[bool, ...]

    @classmethod
    def from_batch(cls, batch: TextBatch) -> _Side:
        units = [word_units(batch, i) for i in range(len(batch))]
        return cls(texts=batch.texts, tokens=batch.tokens, special=batch.special,
                   unit_index=tuple(tuple(u[0]) for u in units),
                   unit_labels=tuple(tuple(u[1]) for u in units),
                   unit_special=tuple(tuple(u[2]) for u in units), truncated=batch.truncated)

    def labels(self, i: int, level: str) -> tuple[str, ...]:
        return self.tokens[i] if level == "token" else self.unit_labels[i]

    def specials(self, i: int, level: str) -> tuple[bool, ...]:
        return self.special[i] if level == "token" else self.unit_special[i]


class AttentionResult(Result):
    """Attention maps of a batch of texts, with the views derived from them.

    ``maps[attention][i]``: numpy array ``(n_layers, n_heads, Tq_i, Tk_i)`` for text ``i``
    (``attention`` a key of ``ATTENTIONS``; padding removed, special tokens kept), dtype float32
    or float16; ``layers`` and ``heads`` are the model's layer and head numbers that the first two
    axes hold. ``texts``, ``tokens(i)``, ``words(i)``, ``truncated``; ``importance``: the
    ``head_importance`` table when ``attention(..., importance=True)``. ``causal``: True for
    decoder-only models (rollout/flow then read from the last token by default).
    """

    PLOTS: Mapping[str, str] = MappingProxyType({
        "head": "one head of one layer as a query x key heatmap with token labels",
        "grid": "layer x head thumbnails of every captured map of one text",
        "head_summary": "heatmap of a head statistic (HEAD_STATISTICS or 'importance') "
                        "over layers and heads",
        "rollout": "attention rollout from one query token, bars over the words",
        "flow": "attention flow from one query token, bars over the words",
    })

    def __init__(self, *, maps: Mapping[str, tuple[np.ndarray, ...]], layers: Sequence[int],
                 heads: Sequence[int], source: _Side, target: _Side | None, causal: bool,
                 n_layers: int, n_heads: int, meta: dict[str, Any],
                 importance=None) -> None:
        self.maps = MappingProxyType(dict(maps))
        self.layers = tuple(int(x) for x in layers)
        self.heads = tuple(int(x) for x in heads)
        self._source = source
        self._target = target
        self.causal = bool(causal)
        self.n_layers = int(n_layers)
        self.n_heads = int(n_heads)
        self.meta = meta
        self.importance = importance

    # ---- bookkeeping

    @property
    def texts(self) -> tuple[str, ...]:
        return self._source.texts

    @property
    def targets(self) -> tuple[str, ...] | None:
        return self._target.texts if self._target is not None else None

    @property
    def truncated(self) -> tuple[bool, ...]:
        """Per text: True when the text (or its target) was cut at the model's maximum length."""
        if self._target is None:
            return self._source.truncated
        return tuple(a or b for a, b in zip(self._source.truncated, self._target.truncated,
                                            strict=True))

    def __len__(self) -> int:
        return len(self.texts)

    def tokens(self, text_id: int = 0, *, side: str = "source") -> tuple[str, ...]:
        """Tokens of text ``text_id`` (``side="target"``: of the decoder input)."""
        return self._side(side).tokens[self._check_text(text_id)]

    def words(self, text_id: int = 0, *, side: str = "source") -> tuple[str, ...]:
        """Word units of text ``text_id``: original substrings, special tokens as their own."""
        return self._side(side).unit_labels[self._check_text(text_id)]

    def _side(self, side: str) -> _Side:
        if side == "source":
            return self._source
        if side == "target" and self._target is not None:
            return self._target
        if side == "target":
            raise ValueError("side='target' needs an encoder-decoder model; this result has only "
                             "side='source'")
        raise ValueError(f"unknown side {side!r}; valid: {', '.join(SIDES)}")

    def _sides(self, attention: str) -> tuple[_Side, _Side]:
        self._check_attention(attention)
        if attention == "self":
            return self._source, self._source
        if attention == "decoder":
            return self._target, self._target
        return self._target, self._source

    def _check_attention(self, attention: str) -> str:
        if attention not in self.maps:
            raise ValueError(f"unknown attention {attention!r}; this result holds "
                             f"{', '.join(map(repr, self.maps))}")
        return attention

    def _check_text(self, text_id: int) -> int:
        if isinstance(text_id, bool) or not isinstance(text_id, (int, np.integer)) or \
                not 0 <= text_id < len(self.texts):
            raise IndexError(f"text_id {text_id!r} is out of range; valid: 0..{len(self.texts) - 1}")
        return int(text_id)

    def _check_level(self, level: str) -> str:
        if level not in LEVELS:
            raise ValueError(f"unknown level {level!r}; valid: {', '.join(LEVELS)}")
        return level

    def _layer_position(self, layer: int | None) -> int:
        if layer is None:
            return len(self.layers) - 1
        if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)) or \
                layer not in self.layers:
            raise IndexError(f"layer {layer!r} was not captured; valid: "
                             f"{_ranges(self.layers)} (pass layers=... to attention())")
        return self.layers.index(int(layer))

    def _head_position(self, head: int | None) -> int | None:
        if head is None:
            return None
        if isinstance(head, bool) or not isinstance(head, (int, np.integer)) or \
                head not in self.heads:
            raise IndexError(f"head {head!r} was not captured; valid: {_ranges(self.heads)} "
                             f"(pass heads=... to attention())")
        return self.heads.index(int(head))

    # ---- maps

    def matrix(self, text_id: int = 0, *, layer: int | None = None, head: int | None = None,
               level: str = "token", attention: str = "self") -> np.ndarray:
        """One map ``(Tq, Tk)`` as float64: ``head=None`` averages the captured heads;
        ``layer=None`` is the last captured layer. Rows sum to 1 at both levels."""
        i = self._check_text(text_id)
        self._check_level(level)
        maps = self.maps[self._check_attention(attention)][i]
        block = np.asarray(maps[self._layer_position(layer)], dtype=np.float64)
        h = self._head_position(head)
        block = block.mean(0) if h is None else block[h]
        if level == "word":
            query_side, key_side = self._sides(attention)
            block = fold_matrix(block, query_side.unit_index[i], key_side.unit_index[i])
        return block

    def _full_maps(self, text_id: int, what: str) -> np.ndarray:
        if self.layers != tuple(range(self.n_layers)) or self.heads != tuple(range(self.n_heads)):
            raise ValueError(f"{what} needs every layer and head of the model (0..{self.n_layers - 1}"
                             f" x 0..{self.n_heads - 1}); this result holds layers "
                             f"{_ranges(self.layers)} and heads {_ranges(self.heads)}. Call "
                             f"attention() without layers=/heads=")
        return np.asarray(self.maps["self"][self._check_text(text_id)], dtype=np.float64)

    def _default_query(self, text_id: int) -> int:
        return len(self._source.tokens[text_id]) - 1 if self.causal else 0

    def rollout_matrix(self, text_id: int = 0) -> np.ndarray:
        """Token-level rollout ``(T, T)`` of text ``text_id`` (see ``attention_rollout``)."""
        return attention_rollout(self._full_maps(text_id, "rollout"))

    def rollout(self, text_id: int = 0, *, query: int | None = None,
                level: str = "word") -> np.ndarray:
        """Rollout row of token ``query`` (default: the first token, ``[CLS]``; the last token for
        causal models) over tokens or word units; sums to 1."""
        self._check_level(level)
        i = self._check_text(text_id)
        query = self._check_query(i, query)
        row = self.rollout_matrix(i)[query]
        return self._fold_row(i, row, level)

    def flow(self, text_id: int = 0, *, query: int | None = None,
             level: str = "word") -> np.ndarray:
        """Attention flow from token ``query`` (default as in ``rollout``) over tokens or word
        units; sums to 1. At most ``FLOW_MAX_TOKENS`` tokens."""
        self._check_level(level)
        i = self._check_text(text_id)
        query = self._check_query(i, query)
        row = attention_flow(self._full_maps(i, "flow"), query=query)
        return self._fold_row(i, row, level)

    def _check_query(self, i: int, query: int | None) -> int:
        length = len(self._source.tokens[i])
        if query is None:
            return self._default_query(i)
        if isinstance(query, bool) or not isinstance(query, (int, np.integer)) or \
                not 0 <= query < length:
            raise IndexError(f"query {query!r} is out of range; valid token positions: "
                             f"0..{length - 1}")
        return int(query)

    def _fold_row(self, i: int, row: np.ndarray, level: str) -> np.ndarray:
        if level == "token":
            return row
        return fold_scores(row, self._source.unit_index[i])

    # ---- head statistics

    def head_statistics(self, *, attention: str = "self") -> Any:
        """``pandas.DataFrame``, one row per captured (layer, head): ``layer``, ``head``, then one
        column per ``HEAD_STATISTICS`` key (mean over the query rows of each text, then over
        texts), plus ``importance`` when it was computed."""
        import pandas as pd

        _, key_side = self._sides(attention)
        per_text = [_head_statistics(maps, key_side.special[i])
                    for i, maps in enumerate(self.maps[attention])]
        layer_grid, head_grid = np.meshgrid(self.layers, self.heads, indexing="ij")
        frame = pd.DataFrame({"layer": layer_grid.ravel(), "head": head_grid.ravel()})
        for key in HEAD_STATISTICS:
            frame[key] = np.mean([s[key] for s in per_text], axis=0).ravel()
        if self.importance is not None and attention == "self":
            frame = frame.merge(self.importance[["layer", "head", "importance"]],
                                on=["layer", "head"], how="left")
        return frame

    # ---- tidy frame

    def to_frame(self, *, level: str = "token", attention: str | None = None,
                 text_id: int | None = None, layer: int | None = None,
                 head: int | None = None):
        """Tidy ``pandas.DataFrame``, one row per (text, attention, layer, head, query, key).

        Columns: ``text_id``, ``text``, ``attention`` (key of ``ATTENTIONS``), ``layer``,
        ``head``, ``query_index``, ``key_index`` (token or word-unit positions),
        ``query_token``, ``key_token`` (tokens, or words with ``level="word"``),
        ``query_special``, ``key_special`` (special tokens, to filter out), ``truncated``,
        ``weight``. Filter with ``attention``, ``text_id``, ``layer``, ``head`` (all when None).
        """
        import pandas as pd

        self._check_level(level)
        kinds = list(self.maps) if attention is None else [self._check_attention(attention)]
        text_ids = range(len(self.texts)) if text_id is None else [self._check_text(text_id)]
        layer_pos = (range(len(self.layers)) if layer is None
                     else [self._layer_position(layer)])
        head_pos = range(len(self.heads)) if head is None else [self._head_position(head)]
        parts = []
        for kind in kinds:
            query_side, key_side = self._sides(kind)
            for i in text_ids:
                block = np.asarray(self.maps[kind][i], dtype=np.float64)
                block = block[np.ix_(list(layer_pos), list(head_pos))]
                if level == "word":
                    block = fold_matrix(block, query_side.unit_index[i], key_side.unit_index[i])
                grid = np.indices(block.shape).reshape(4, -1)
                q_labels = np.asarray(query_side.labels(i, level), dtype=object)
                k_labels = np.asarray(key_side.labels(i, level), dtype=object)
                q_special = np.asarray(query_side.specials(i, level), dtype=bool)
                k_special = np.asarray(key_side.specials(i, level), dtype=bool)
                parts.append(pd.DataFrame({
                    "text_id": i, "text": self.texts[i], "attention": kind,
                    "layer": np.asarray(self.layers)[list(layer_pos)][grid[0]],
                    "head": np.asarray(self.heads)[list(head_pos)][grid[1]],
                    "query_index": grid[2], "key_index": grid[3],
                    "query_token": q_labels[grid[2]], "key_token": k_labels[grid[3]],
                    "query_special": q_special[grid[2]], "key_special": k_special[grid[3]],
                    "truncated": self.truncated[i], "weight": block.ravel(),
                }))
        return pd.concat(parts, ignore_index=True)

    # ---- figures

    def _title_suffix(self, i: int) -> str:
        return " (truncated)" if self.truncated[i] else ""

    def plot(self, kind: str | None = None, *, ax=None, text_id: int = 0,
             layer: int | None = None, head: int | None = None, level: str | None = None,
             attention: str = "self", hide_special: bool = False,
             statistic: str = "entropy", query: int | None = None):
        """Draw one of ``PLOTS`` and return the ``matplotlib.figure.Figure``.

        ``text_id``, ``layer`` (default: last captured), ``head`` (default: the first captured
        head; ``"head"`` kind), ``level`` (default: tokens for heatmaps, words for
        ``"rollout"``/``"flow"``), ``attention``, ``hide_special`` (leave special tokens out;
        the remaining values are not renormalised, so rows then sum to less than 1),
        ``statistic`` (``"head_summary"``: a ``HEAD_STATISTICS`` key or ``"importance"``),
        ``query`` (``"rollout"``/``"flow"``). Titles say when a text was truncated. ``"grid"``
        draws its own figure (no ``ax``).
        """
        kind = self._check_kind(kind)
        if level is None:
            level = "word" if kind in ("rollout", "flow") else "token"
        self._check_level(level)
        if kind == "head":
            return _plot_head(self, ax=ax, text_id=text_id, layer=layer,
                              head=self.heads[0] if head is None else head, level=level,
                              attention=attention, hide_special=hide_special)
        if kind == "grid":
            if ax is not None:
                raise ValueError("plot('grid') draws a grid of axes and takes no ax=; call it "
                                 "without ax")
            return _plot_grid(self, text_id=text_id, level=level, attention=attention,
                              hide_special=hide_special)
        if kind == "head_summary":
            return _plot_head_summary(self, ax=ax, statistic=statistic, attention=attention)
        return _plot_bars(self, kind, ax=ax, text_id=text_id, level=level, query=query,
                          hide_special=hide_special)

    # ---- notebook / HTML

    def summary(self) -> str:
        kinds = ", ".join(self.maps)
        truncated = sum(self.truncated)
        note = f"; {truncated} truncated" if truncated else ""
        return (f"AttentionResult: {len(self.texts)} text(s), {kinds} attention, layers "
                f"{_ranges(self.layers)} x heads {_ranges(self.heads)} of "
                f"{_model_name(self)}{note}")

    def view_html(self, *, element_id: str | None = None, max_tokens: int = 128) -> str:
        """The interactive head/model view as an HTML fragment (inline JS/CSS, no network)."""
        from .attention_view import render_view

        return render_view(self, element_id=element_id, max_tokens=max_tokens)

    def _repr_html_(self) -> str:
        return self.view_html()

    def save_html(self, path: str | os.PathLike, *, max_tokens: int = 128) -> Path:
        """Write the interactive view as one standalone, offline HTML file (atomically)."""
        from .attention_view import render_page

        target = Path(path)
        page = render_page(self, max_tokens=max_tokens)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_text(page, encoding="utf-8")
        tmp.replace(target)
        return target

    def _content_hash(self) -> str:
        digest = hashlib.sha256()
        for kind, arrays in self.maps.items():
            digest.update(kind.encode())
            for a in arrays:
                digest.update(np.ascontiguousarray(a).tobytes())
        for text in self.texts:
            digest.update(text.encode())
        return digest.hexdigest()[:12]


def _ranges(values: Sequence[int]) -> str:
    values = list(values)
    if values and values == list(range(values[0], values[-1] + 1)):
        return f"{values[0]}..{values[-1]}" if len(values) > 1 else str(values[0])
    return ", ".join(map(str, values))


# --------------------------------------------------------------------------- capture


def _check_model(model) -> None:
    from .loading import LoadedModel

    if not isinstance(model, LoadedModel):
        raise TypeError(f"attention() takes an explain.LoadedModel (explain.load_model(...)), got "
                        f"{type(model).__name__}")
    if not model.is_text or model.tokenizer is None:
        raise TypeError(f"{model.name} is a {model.task!r} model; attention maps need a text "
                        f"model with a tokenizer")


def _check_dtype(dtype) -> torch.dtype:
    if isinstance(dtype, str) and dtype in DTYPES:
        return DTYPES[dtype]
    if dtype in DTYPES.values():
        return dtype
    raise ValueError(f"unknown dtype {dtype!r}; valid: {', '.join(DTYPES)} (or torch.float32, "
                     f"torch.float16)")


def _check_selection(values, n: int, what: str) -> tuple[int, ...]:
    if values is None:
        return tuple(range(n))
    if isinstance(values, (int, np.integer)) and not isinstance(values, bool):
        values = [values]
    values = list(values)
    if not values:
        raise ValueError(f"{what}=[] selects nothing; pass None for all, or indices in 0..{n - 1}")
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not -n <= v < n:
            raise IndexError(f"{what[:-1]} {v!r} does not exist; the model has {n} {what} "
                             f"(valid: 0..{n - 1})")
    resolved = sorted({int(v) % n for v in values})
    return tuple(resolved)


def _mha_modules(module: nn.Module) -> list[str]:
    return [name for name, sub in module.named_modules() if isinstance(sub, nn.MultiheadAttention)]


def _max_length(model, max_length: int | None) -> int | None:
    config = model.config
    if isinstance(config, Mapping):
        limit = min(model_max_length(model.tokenizer),
                    int(config.get("max_positions", 10**9)))
        if max_length is None:
            return limit
        if max_length > limit:
            raise ValueError(f"max_length={max_length} exceeds the model's limit of {limit} tokens")
    return max_length


def _forward_inputs(module: nn.Module, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    try:
        parameters = inspect.signature(module.forward).parameters
    except (TypeError, ValueError):
        return inputs
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return inputs
    return {k: v for k, v in inputs.items() if k in parameters}


def _rows(batch: TextBatch, start: int, stop: int) -> dict[str, torch.Tensor]:
    width = max(batch.lengths[start:stop])
    return {k: v[start:stop, :width] for k, v in batch.model_inputs().items()}


def _is_causal(model) -> bool:
    config = model.config
    if model.task == "causal-lm":
        return True
    return bool(getattr(config, "is_decoder", False)) and not \
        getattr(config, "is_encoder_decoder", False)


def _require_eager(model) -> None:
    implementation = getattr(model.config, "_attn_implementation", None)
    if implementation != "eager":
        raise ValueError(
            f"{model.name} ({type(model.model).__name__}) uses {implementation!r} attention, which "
            f"returns no attention weights; load it with explain.load_model(path) (eager by "
            f"default), from_pretrained(..., attn_implementation='eager') or call "
            f"model.set_attn_implementation('eager')")


def _expected_layers(config, what: str) -> int | None:
    if what == "self":
        keys = (("encoder_layers", "num_layers") if getattr(config, "is_encoder_decoder", False)
                else ("num_hidden_layers", "n_layer", "num_layers"))
    else:
        keys = ("decoder_layers", "num_decoder_layers")
    for key in keys:
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def _checked(attentions, what: str, model) -> tuple[torch.Tensor, ...]:
    if attentions is None or len(attentions) == 0:
        raise ValueError(f"{model.name} ({type(model.model).__name__}) returned no {what} "
                         f"attention weights; load it with attn_implementation='eager'")
    expected = _expected_layers(model.config, "self" if what in ("self", "encoder") else what)
    if expected is not None and len(attentions) != expected:
        # transformers drops the layers whose attention module returned no weights, which
        # would shift every later layer: refuse instead.
        raise ValueError(f"{model.name} ({type(model.model).__name__}) returned {what} attention "
                         f"weights for {len(attentions)} of its {expected} layers: the attention "
                         f"module of some layer gives no weights (no eager path); attention maps "
                         f"need every layer's weights")
    missing = [i for i, a in enumerate(attentions) if a is None or a.dim() != 4]
    if missing:
        raise ValueError(f"{model.name} ({type(model.model).__name__}): {what} layer(s) "
                         f"{', '.join(map(str, missing))} returned no per-head attention weights "
                         f"(their attention module has no eager path); attention maps need every "
                         f"layer's weights")
    return tuple(attentions)


def attention(
    model,
    texts: Sequence[str] | str,
    *,
    text_pairs: Sequence[str] | str | None = None,
    targets: Sequence[str] | str | None = None,
    layers: Sequence[int] | int | None = None,
    heads: Sequence[int] | int | None = None,
    dtype: torch.dtype | str = torch.float32,
    max_length: int | None = None,
    batch_size: int = 16,
    importance: bool = False,
    target: int | str | None = None,
) -> AttentionResult:
    """Capture per-layer, per-head attention maps of ``texts``.

    ``model``: an ``explain.LoadedModel`` text model: a Hugging Face model with eager attention,
    or an ``nn.Module`` built on ``nn.MultiheadAttention``. ``text_pairs``: second segments.
    ``targets``: decoder inputs of an encoder-decoder model (default: the texts). ``layers``,
    ``heads``: indices to keep (default all; negative indices count from the end). ``dtype``:
    storage precision (``DTYPES``). ``max_length``: tokens per text (default the model's limit;
    longer texts are truncated, flagged in ``result.truncated`` and in figure titles, and warned
    about). ``importance=True`` also runs ``head_importance`` for ``target`` (default: the
    predicted class). Returns an ``AttentionResult``.
    """
    _check_model(model)
    storage = _check_dtype(dtype)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    module = model.model
    config = model.config
    is_hf = model.is_huggingface
    encoder_decoder = is_hf and bool(getattr(config, "is_encoder_decoder", False))
    if encoder_decoder and text_pairs is not None:
        raise ValueError("text_pairs is for encoder models; an encoder-decoder model reads "
                         "targets= in its decoder")
    if targets is not None and not encoder_decoder:
        raise ValueError(f"targets= is the decoder input of an encoder-decoder model; "
                         f"{model.name} has no decoder")
    mha_names: list[str] = []
    if not is_hf:
        mha_names = _mha_modules(module)
        if not mha_names:
            raise TypeError(f"{model.name} ({type(module).__name__}) is not a Hugging Face model "
                            f"and has no nn.MultiheadAttention module, so it exposes no attention "
                            f"weights; attention() supports Hugging Face models (eager attention) "
                            f"and modules built on nn.MultiheadAttention")
    else:
        _require_eager(model)

    batch = model.encode_texts(texts, text_pairs=text_pairs,
                               max_length=_max_length(model, max_length))
    target_batch = None
    if encoder_decoder:
        target_batch = encode_texts(model.tokenizer, batch.texts if targets is None else targets,
                                    max_length=max_length, config=config)
        if len(target_batch) != len(batch):
            raise ValueError(f"got {len(batch)} texts but {len(target_batch)} targets; pass one "
                             f"target per text")

    kinds = ("self", "decoder", "cross") if encoder_decoder else ("self",)
    collected: dict[str, list[np.ndarray]] = {k: [] for k in kinds}
    layer_sel: tuple[int, ...] | None = None
    head_sel: tuple[int, ...] | None = None
    n_layers = n_heads = 0
    with hooks.preserved_state(module), torch.inference_mode():
        module.eval()
        for start in range(0, len(batch), batch_size):
            stop = min(start + batch_size, len(batch))
            inputs = _rows(batch, start, stop)
            if is_hf:
                if encoder_decoder:
                    decoder = _rows(target_batch, start, stop)
                    inputs = {"input_ids": inputs["input_ids"],
                              "attention_mask": inputs["attention_mask"],
                              "decoder_input_ids": decoder["input_ids"],
                              "decoder_attention_mask": decoder["attention_mask"]}
                output = module(**inputs, output_attentions=True, return_dict=True)
                if encoder_decoder:
                    found = {"self": _checked(output.encoder_attentions, "encoder", model),
                             "decoder": _checked(output.decoder_attentions, "decoder", model),
                             "cross": _checked(output.cross_attentions, "cross", model)}
                else:
                    found = {"self": _checked(output.attentions, "self", model)}
                del output
            else:
                found = {"self": _capture_mha(model, mha_names, inputs)}
            if layer_sel is None:
                n_layers, n_heads = len(found["self"]), int(found["self"][0].shape[1])
                layer_sel = _check_selection(layers, n_layers, "layers")
                head_sel = _check_selection(heads, n_heads, "heads")
                for kind, maps in found.items():
                    if len(maps) != n_layers or int(maps[0].shape[1]) != n_heads:
                        raise ValueError(f"the {kind} attention has {len(maps)} layers x "
                                         f"{maps[0].shape[1]} heads, unlike the encoder's "
                                         f"{n_layers} x {n_heads}; explain needs equal stacks")
            # Fill each text's array layer by layer and drop the model's tensor for that layer
            # at once, so the transient peak is one batch of float32 maps plus what is kept.
            head_index = torch.tensor(head_sel)
            numpy_dtype = np.float16 if storage == torch.float16 else np.float32
            for kind in list(found):
                maps = list(found.pop(kind))
                arrays = []
                for row in range(stop - start):
                    i = start + row
                    q_len = (target_batch.lengths[i] if kind in ("decoder", "cross")
                             else batch.lengths[i])
                    k_len = target_batch.lengths[i] if kind == "decoder" else batch.lengths[i]
                    arrays.append(np.empty((len(layer_sel), len(head_sel), q_len, k_len),
                                           dtype=numpy_dtype))
                for position, layer in enumerate(layer_sel):
                    layer_maps = maps[layer].index_select(1, head_index).to(storage)
                    maps[layer] = None
                    for row, array in enumerate(arrays):
                        q_len, k_len = array.shape[-2:]
                        array[position] = layer_maps[row, :, :q_len, :k_len].numpy()
                    del layer_maps
                collected[kind].extend(arrays)
                del maps

    source = _Side.from_batch(batch)
    target_side = _Side.from_batch(target_batch) if target_batch is not None else None
    importance_frame = None
    if importance:
        importance_frame = head_importance(model, batch.texts, text_pairs=text_pairs,
                                           target=target, layers=layer_sel, heads=head_sel,
                                           max_length=max_length, batch_size=batch_size)
    meta = make_meta(model, method="attention", parameters={
        "layers": list(layer_sel), "heads": list(head_sel), "dtype": str(storage).split(".")[-1],
        "max_length": batch.max_length, "batch_size": batch_size,
        "capture": "output_attentions" if is_hf else "hooks:nn.MultiheadAttention",
        "encoder_decoder": encoder_decoder, "importance": bool(importance),
        "target": target, "rollout_residual": 0.5})
    return AttentionResult(maps={k: tuple(v) for k, v in collected.items()}, layers=layer_sel,
                           heads=head_sel, source=source, target=target_side,
                           causal=_is_causal(model), n_layers=n_layers, n_heads=n_heads,
                           meta=meta, importance=importance_frame)


def _force_weights(_module, args, kwargs):
    kwargs = dict(kwargs)
    kwargs["need_weights"] = True
    kwargs["average_attn_weights"] = False
    return args, kwargs


def _capture_mha(model, names: list[str], inputs: dict) -> tuple[torch.Tensor, ...]:
    module = model.model
    with hooks.edit_inputs(module, dict.fromkeys(names, _force_weights)), \
            hooks.record(module, names) as recording:
        module(**_forward_inputs(module, inputs))
    maps = []
    for name in names:
        output = recording.outputs.get(name)
        if output is None:
            raise ValueError(f"the attention module {name!r} of {model.name} did not run in the "
                             f"forward pass, so it has no attention weights")
        weights = output[1] if isinstance(output, tuple) and len(output) > 1 else None
        if weights is None or weights.dim() != 4:
            raise ValueError(f"the attention module {name!r} of {model.name} returned no per-head "
                             f"attention weights (got {None if weights is None else tuple(weights.shape)})")
        maps.append(weights)
    return tuple(maps)


# --------------------------------------------------------------------------- head importance


def _projection_names(module: nn.Module, n_layers: int) -> list[str]:
    names = [name for name, _ in module.named_modules() if name.endswith(_PROJECTION_SUFFIXES)
             and ".encoder_attn." not in name and "EncDec" not in name]
    if len(names) != n_layers:
        raise ValueError(f"{type(module).__name__}: found {len(names)} attention output "
                         f"projections ({', '.join(names) or 'none'}) for {n_layers} layers; head "
                         f"importance knows the module names ending in "
                         f"{', '.join(_PROJECTION_SUFFIXES)}")
    return names


def _scores(model, output, inputs: dict, targets: torch.Tensor | None) -> torch.Tensor:
    logits = output.logits if hasattr(output, "logits") else output
    if model.task == "sequence-classification":
        return logits.gather(1, targets[:, None])[:, 0].float()
    mask = inputs["attention_mask"].float()
    ids = inputs["input_ids"]
    logprobs = torch.log_softmax(logits.float(), dim=-1)
    if model.task == "causal-lm":
        picked = logprobs[:, :-1].gather(2, ids[:, 1:, None])[..., 0]
        weights = mask[:, 1:]
    else:
        picked = logprobs.gather(2, ids[..., None])[..., 0]
        weights = mask
    return (picked * weights).sum(1) / weights.sum(1).clamp_min(1.0)


def _mask_projection(head: int, n_heads: int):
    def edit(_module, args, kwargs):
        x = args[0]
        size = x.shape[-1] // n_heads
        x = x.clone()
        x[..., head * size:(head + 1) * size] = 0
        return (x, *args[1:]), kwargs

    return edit


def _mask_mha(head: int):
    def edit(module: nn.MultiheadAttention, inputs, output):
        attended, weights = output[0], output[1]
        value = inputs[2]
        if not module.batch_first:
            value = value.transpose(0, 1)
            attended = attended.transpose(0, 1)
        embed, n_heads = module.embed_dim, module.num_heads
        size = embed // n_heads
        if module.in_proj_weight is not None:
            w_v = module.in_proj_weight[2 * embed:][head * size:(head + 1) * size]
        else:
            w_v = module.v_proj_weight[head * size:(head + 1) * size]
        b_v = (module.in_proj_bias[2 * embed:][head * size:(head + 1) * size]
               if module.in_proj_bias is not None else None)
        v = torch.nn.functional.linear(value, w_v, b_v)              # (B, S, d)
        head_out = weights[:, head] @ v                                # (B, T, d)
        contribution = head_out @ module.out_proj.weight[:, head * size:(head + 1) * size].T
        attended = attended - contribution
        if not module.batch_first:
            attended = attended.transpose(0, 1)
        return (attended, weights)

    return edit


def head_importance(
    model,
    texts: Sequence[str] | str,
    *,
    text_pairs: Sequence[str] | str | None = None,
    target: int | str | None = None,
    layers: Sequence[int] | int | None = None,
    heads: Sequence[int] | int | None = None,
    max_length: int | None = None,
    batch_size: int = 16,
):
    """Importance of each attention head for the model's score, by masking it.

    For each (layer, head), the head's output is zeroed (its slice of the input of the attention
    output projection, via ``explain.hooks.edit_inputs``; for ``nn.MultiheadAttention`` its
    contribution is subtracted from the module output) and the model's score recomputed. Score:
    the logit of ``target`` (class name or index; default: each text's predicted class) for
    classifiers; the mean log-probability of the text's own tokens for masked and causal LMs.
    Returns a ``pandas.DataFrame`` with one row per (layer, head): ``layer``, ``head``,
    ``score`` (mean unmasked score), ``masked_score``, ``importance`` (= score - masked_score,
    mean over texts; positive: the head supports the score), ``importance_std``, ``n_texts``.
    Cost: ``1 + layers x heads`` forward passes. Hooks are removed also when a forward raises.
    """
    import pandas as pd

    _check_model(model)
    module = model.model
    if model.task not in ("sequence-classification", "causal-lm", "masked-lm"):
        raise ValueError(f"head importance needs a score: a classifier or a language model; "
                         f"{model.name} is a {model.task!r} model")
    if model.is_huggingface and getattr(model.config, "is_encoder_decoder", False):
        raise ValueError("head importance does not support encoder-decoder models yet")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    batch = model.encode_texts(texts, text_pairs=text_pairs,
                               max_length=_max_length(model, max_length))
    if model.is_huggingface:
        n_layers = int(getattr(model.config, "num_hidden_layers", 0) or
                       getattr(model.config, "n_layer", 0))
        n_heads = int(getattr(model.config, "num_attention_heads", 0) or
                      getattr(model.config, "n_head", 0))
        names = _projection_names(module, n_layers)
    else:
        names = _mha_modules(module)
        if not names:
            raise TypeError(f"{model.name} has no nn.MultiheadAttention module and is not a "
                            f"Hugging Face model; no heads to mask")
        n_layers = len(names)
        n_heads = int(dict(module.named_modules())[names[0]].num_heads)
    layer_sel = _check_selection(layers, n_layers, "layers")
    head_sel = _check_selection(heads, n_heads, "heads")
    target_index = None
    if target is not None:
        if model.task != "sequence-classification":
            raise ValueError(f"target= selects a class of a classifier; {model.name} is a "
                             f"{model.task!r} model scored by the log-probability of its text")
        target_index = model.label_index(target)

    def run(edits: Mapping[str, Any], chunks: list) -> torch.Tensor:
        scores = []
        for call, inputs, classes in chunks:
            if model.is_huggingface:
                with hooks.edit_inputs(module, edits):
                    output = module(**call)
            else:
                with hooks.edit_inputs(module, dict.fromkeys(edits, _force_weights)), \
                        hooks.edit_outputs(module, edits):
                    output = module(**call)
            scores.append(_scores(model, output, inputs, classes))
        return torch.cat(scores)

    rows = []
    with hooks.preserved_state(module), torch.inference_mode():
        module.eval()
        # One unmasked forward per chunk gives both the predicted classes and the baseline.
        chunks, baseline = [], []
        for start in range(0, len(batch), batch_size):
            stop = min(start + batch_size, len(batch))
            inputs = _rows(batch, start, stop)
            call = _forward_inputs(module, inputs) if not model.is_huggingface else inputs
            output = module(**call)
            classes = None
            if model.task == "sequence-classification":
                logits = output.logits if hasattr(output, "logits") else output
                classes = (logits.argmax(-1) if target_index is None
                           else torch.full((stop - start,), target_index, dtype=torch.long))
            baseline.append(_scores(model, output, inputs, classes))
            chunks.append((call, inputs, classes))
        baseline = torch.cat(baseline)
        for layer in layer_sel:
            for head in head_sel:
                edit = (_mask_projection(head, n_heads) if model.is_huggingface
                        else _mask_mha(head))
                masked = run({names[layer]: edit}, chunks)
                change = (baseline - masked).double().numpy()
                rows.append({"layer": layer, "head": head,
                             "score": float(baseline.double().mean()),
                             "masked_score": float(masked.double().mean()),
                             "importance": float(change.mean()),
                             "importance_std": float(change.std(ddof=1)) if len(change) > 1
                             else math.nan,
                             "n_texts": len(change)})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- figures


def _tick_step(n: int, room: int = 60) -> int:
    return max(1, math.ceil(n / room))


def _short(label: str, limit: int = 18) -> str:
    label = label.replace("\n", " ")
    return label if len(label) <= limit else label[:limit - 1] + "…"


def _model_name(result: AttentionResult) -> str:
    return str(result.meta.get("model", {}).get("name", "model"))


def _kept(labels, specials, hide_special: bool) -> np.ndarray:
    keep = np.ones(len(labels), dtype=bool)
    if hide_special:
        keep = ~np.asarray(specials, dtype=bool)
        if not keep.any():
            keep = np.ones(len(labels), dtype=bool)
    return keep


def _plot_head(result: AttentionResult, *, ax, text_id, layer, head, level, attention,
               hide_special):
    from .plotting import SEQUENTIAL, axes_or_new, style

    i = result._check_text(text_id)
    layer = result.layers[result._layer_position(layer)]
    matrix = result.matrix(i, layer=layer, head=head, level=level, attention=attention)
    query_side, key_side = result._sides(attention)
    q_labels, k_labels = query_side.labels(i, level), key_side.labels(i, level)
    q_keep = _kept(q_labels, query_side.specials(i, level), hide_special)
    k_keep = _kept(k_labels, key_side.specials(i, level), hide_special)
    matrix = matrix[np.ix_(q_keep, k_keep)]
    q_labels = [_short(x) for x, k in zip(q_labels, q_keep, strict=True) if k]
    k_labels = [_short(x) for x, k in zip(k_labels, k_keep, strict=True) if k]
    n_q, n_k = matrix.shape
    width = min(16.0, max(4.5, 0.22 * n_k + 2.2))
    height = min(16.0, max(3.5, 0.22 * n_q + 1.6))
    with style():
        fig, ax = axes_or_new(ax, width, height)
        image = ax.imshow(matrix, cmap=SEQUENTIAL, vmin=0.0, vmax=max(float(matrix.max()), 1e-9),
                          aspect="auto")
        step_q, step_k = _tick_step(n_q), _tick_step(n_k)
        ax.set_yticks(range(0, n_q, step_q), q_labels[::step_q])
        ax.set_xticks(range(0, n_k, step_k), k_labels[::step_k], rotation=90)
        ax.set_xlabel(f"key ({level})")
        ax.set_ylabel(f"query ({level})")
        kind = "" if attention == "self" else f"{attention} attention, "
        hidden = ", special tokens hidden" if hide_special else ""
        ax.set_title(f"{_model_name(result)}: {kind}layer {layer}, head {head}, text {i}"
                     f"{hidden}{result._title_suffix(i)}")
        bar = fig.colorbar(image, ax=ax, shrink=0.8)
        bar.set_label("attention weight")
    return fig


def _plot_grid(result: AttentionResult, *, text_id, level, attention, hide_special):
    from matplotlib.colors import PowerNorm

    from .plotting import SEQUENTIAL, new_figure, style

    i = result._check_text(text_id)
    n_l, n_h = len(result.layers), len(result.heads)
    query_side, key_side = result._sides(attention)
    q_keep = _kept(query_side.labels(i, level), query_side.specials(i, level), hide_special)
    k_keep = _kept(key_side.labels(i, level), key_side.specials(i, level), hide_special)
    size = 1.05
    fig, axes = new_figure(min(18.0, size * n_h + 1.4), min(20.0, size * n_l + 0.9),
                           nrows=n_l, ncols=n_h)
    axes = np.asarray(axes, dtype=object).reshape(n_l, n_h)
    norm = PowerNorm(gamma=0.5, vmin=0.0, vmax=1.0)
    with style():
        image = None
        for row, layer in enumerate(result.layers):
            for col, head in enumerate(result.heads):
                ax = axes[row][col]
                matrix = result.matrix(i, layer=layer, head=head, level=level,
                                       attention=attention)[np.ix_(q_keep, k_keep)]
                image = ax.imshow(matrix, cmap=SEQUENTIAL, norm=norm, aspect="auto")
                ax.set_xticks([])
                ax.set_yticks([])
                for spine in ax.spines.values():
                    spine.set_visible(True)
                    spine.set_linewidth(0.4)
                if row == 0:
                    ax.set_title(f"head {head}", fontsize=8)
                if col == 0:
                    ax.set_ylabel(f"layer {layer}", fontsize=8)
        kind = "" if attention == "self" else f"{attention} attention, "
        hidden = ", special tokens hidden" if hide_special else ""
        fig.suptitle(f"{_model_name(result)}: {kind}all heads, text {i} "
                     f"({int(q_keep.sum())} x {int(k_keep.sum())} {level}s{hidden})"
                     f"{result._title_suffix(i)}", fontsize=10)
        bar = fig.colorbar(image, ax=axes, shrink=0.6, aspect=30)
        bar.set_label("attention weight (square-root scale)")
    return fig


def _plot_head_summary(result: AttentionResult, *, ax, statistic, attention):
    from .plotting import DIVERGING, SEQUENTIAL, axes_or_new, diverging_norm, style

    valid = [*HEAD_STATISTICS, "importance"]
    if statistic not in valid:
        raise ValueError(f"unknown statistic {statistic!r}; valid: {', '.join(valid)}")
    frame = result.head_statistics(attention=attention)
    if statistic not in frame.columns:
        raise ValueError("statistic 'importance' needs attention(..., importance=True)")
    grid = frame.pivot(index="layer", columns="head", values=statistic).to_numpy(dtype=float)
    n_l, n_h = grid.shape
    descriptions = {**HEAD_STATISTICS,
                    "importance": "drop of the target score when the head is masked"}
    with style():
        fig, ax = axes_or_new(ax, min(16.0, max(4.5, 0.55 * n_h + 2.2)),
                              min(14.0, max(3.0, 0.45 * n_l + 1.6)))
        if statistic == "importance":
            image = ax.imshow(grid, cmap=DIVERGING, norm=diverging_norm(grid), aspect="auto")
        else:
            image = ax.imshow(grid, cmap=SEQUENTIAL, aspect="auto")
        ax.set_xticks(range(n_h), [str(h) for h in result.heads])
        ax.set_yticks(range(n_l), [str(layer) for layer in result.layers])
        ax.set_xlabel("head")
        ax.set_ylabel("layer")
        if n_l * n_h <= 200:
            finite = grid[np.isfinite(grid)]
            middle = (finite.min() + finite.max()) / 2 if finite.size else 0.0
            scale = float(np.abs(finite).max()) if finite.size else 0.0
            for r in range(n_l):
                for c in range(n_h):
                    value = grid[r, c]
                    if not np.isfinite(value):
                        continue
                    dark = (abs(value) > 0.6 * np.abs(finite).max()) if statistic == "importance" \
                        else value > middle
                    text = f"{value:.2f}" if scale >= 0.1 else f"{value:.1e}"
                    ax.text(c, r, text, ha="center", va="center", fontsize=6.5,
                            color="white" if dark else "black")
        n_texts = len(result.texts)
        kind = "" if attention == "self" else f" ({attention} attention)"
        ax.set_title(f"{_model_name(result)}: {statistic.replace('_', ' ')}{kind}, mean over "
                     f"{n_texts} text{'s' if n_texts != 1 else ''}"
                     f"{' (some truncated)' if any(result.truncated) else ''}")
        bar = fig.colorbar(image, ax=ax, shrink=0.85)
        bar.set_label(descriptions[statistic], fontsize=7)
    return fig


def _plot_bars(result: AttentionResult, kind: str, *, ax, text_id, level, query, hide_special):
    from .plotting import axes_or_new, style

    i = result._check_text(text_id)
    values = result.rollout(i, query=query, level=level) if kind == "rollout" \
        else result.flow(i, query=query, level=level)
    side = result._source
    labels = [_short(x, 24) for x in side.labels(i, level)]
    specials = side.specials(i, level)
    keep = _kept(labels, specials, hide_special)
    values = values[keep]
    labels = [x for x, k in zip(labels, keep, strict=True) if k]
    specials = [x for x, k in zip(specials, keep, strict=True) if k]
    q = result._check_query(i, query)
    q_label = side.tokens[i][q]
    q_word = side.unit_labels[i][side.unit_index[i][q]]
    q_text = f"{q_label!r}" + (f" of {q_word!r}" if q_word != q_label else "")
    n = len(values)
    with style():
        fig, ax = axes_or_new(ax, 6.0, min(18.0, max(2.5, 0.24 * n + 1.2)))
        colors = ["#b0b0b0" if s else "#2b6cb0" for s in specials]
        positions = np.arange(n)
        ax.barh(positions, values, color=colors, height=0.75)
        ax.set_yticks(positions, labels)
        ax.invert_yaxis()
        ax.set_xlim(0, max(float(values.max()) * 1.12, 1e-9))
        total = "special tokens hidden; all units sum to 1" if hide_special and not keep.all() \
            else "sums to 1"
        ax.set_xlabel(f"share of {kind} from query {q_label!r} ({total})")
        ax.grid(axis="x", linewidth=0.4, alpha=0.5)
        ax.set_axisbelow(True)
        name = "rollout" if kind == "rollout" else "flow"
        ax.set_title(f"{_model_name(result)}: attention {name}, text {i}, query token {q} "
                     f"{q_text}{result._title_suffix(i)}")
        if any(specials):
            from matplotlib.patches import Patch

            ax.legend(handles=[Patch(color="#2b6cb0", label=level),
                               Patch(color="#b0b0b0", label="special token")],
                      loc="best", frameon=True, framealpha=0.9)
    return fig
