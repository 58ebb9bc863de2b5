"""``AttentionResult``: the maps of a batch of texts and every view derived from them.

Maps are stored per text without padding (special tokens kept and flagged, so views can hide
them). ``level="word"`` folds word pieces to the words of the original string
(``explain.text``): **sum over the key pieces of a word, mean over its query pieces**, so every
row still sums to 1; special tokens stay units of their own.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from ..checks import one_of
from ..results import Result
from ..text import TextBatch, fold_matrix, fold_scores, word_units
from . import figures
from .graph import (
    FLOW_MAX_TOKENS,
    HEAD_STATISTICS,
    attention_flow,
    attention_rollout,
    head_statistics,
)
from .view import render_page, render_view

__all__ = ["ATTENTIONS", "LEVELS", "SIDES", "AttentionResult", "ImageAttentionResult", "Side"]

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


@dataclass(frozen=True)
class Side:
    """Per-text token bookkeeping of the encoder (``source``) or decoder (``target``) input.

    For text ``i``: ``tokens[i]`` and ``special[i]`` per token; ``unit_index[i]`` the word unit
    of each token; ``unit_labels[i]``, ``unit_special[i]`` per word unit.
    """

    texts: tuple[str, ...]
    tokens: tuple[tuple[str, ...], ...]
    special: tuple[tuple[bool, ...], ...]
    unit_index: tuple[tuple[int, ...], ...]
    unit_labels: tuple[tuple[str, ...], ...]
    unit_special: tuple[tuple[bool, ...], ...]
    truncated: tuple[bool, ...]

    @classmethod
    def from_batch(cls, batch: TextBatch) -> Side:
        units = [word_units(batch, i) for i in range(len(batch))]
        return cls(texts=batch.texts, tokens=batch.tokens, special=batch.special,
                   unit_index=tuple(tuple(u[0]) for u in units),
                   unit_labels=tuple(tuple(u[1]) for u in units),
                   unit_special=tuple(tuple(u[2]) for u in units), truncated=batch.truncated)

    def labels(self, i: int, level: str) -> tuple[str, ...]:
        """Tokens (``level="token"``) or word units (``"word"``) of text ``i``."""
        return self.tokens[i] if level == "token" else self.unit_labels[i]

    def specials(self, i: int, level: str) -> tuple[bool, ...]:
        """Per token or word unit of text ``i``: True for special tokens."""
        return self.special[i] if level == "token" else self.unit_special[i]


class AttentionResult(Result):
    """Attention maps of a batch of texts, with the views derived from them.

    ``maps[attention][i]``: numpy array ``(n_layers, n_heads, Tq_i, Tk_i)`` for text ``i``
    (``attention`` a key of ``ATTENTIONS``; padding removed, special tokens kept), dtype float32
    or float16; ``layers`` and ``heads`` are the model's layer and head numbers that the first two
    axes hold. ``texts``, ``tokens(i)``, ``words(i)``, ``truncated``; ``importance``: the
    ``HeadImportanceResult`` when ``attention(..., importance=True)``, else None. ``causal``: True
    for decoder-only models (rollout/flow then read from the last token by default). Immutable
    after construction.

    Plot options (``PLOT_OPTIONS``): ``text_id``; ``layer`` (default: the last captured);
    ``head`` (default: the first captured); ``level`` (default: tokens for heatmaps, words for
    ``"rollout"``/``"flow"``); ``attention`` (a key of ``maps``); ``hide_special`` (leave special
    tokens out; the remaining values are not renormalised, so rows then sum to less than 1);
    ``statistic`` (``"head_summary"``: a ``HEAD_STATISTICS`` key or ``"importance"``); ``query``
    (``"rollout"``/``"flow"``). Titles say when a text was truncated. ``"grid"`` draws its own
    figure and refuses ``ax``.
    """

    PLOTS: Mapping[str, str] = MappingProxyType({
        "head": "one head of one layer as a query x key heatmap with token labels",
        "grid": "layer x head thumbnails of every captured map of one text",
        "head_summary": "heatmap of one statistic per head over layers and heads",
        "rollout": "attention rollout from one query token, bars over the words",
        "flow": "attention flow from one query token, bars over the words",
    })
    PLOT_OPTIONS: Mapping[str, tuple[str, ...]] = MappingProxyType({
        "head": ("text_id", "layer", "head", "level", "attention", "hide_special"),
        "grid": ("text_id", "level", "attention", "hide_special"),
        "head_summary": ("statistic", "attention"),
        "rollout": ("text_id", "level", "query", "hide_special"),
        "flow": ("text_id", "level", "query", "hide_special"),
    })

    def __init__(self, *, maps: Mapping[str, tuple[np.ndarray, ...]], layers: Sequence[int],
                 heads: Sequence[int], source: Side, target: Side | None, causal: bool,
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
        self._freeze()

    # ---- bookkeeping

    @property
    def model_name(self) -> str:
        """The model's name from the provenance (``"model"`` when it has none)."""
        return str(self.meta.get("model", {}).get("name", "model"))

    @property
    def texts(self) -> tuple[str, ...]:
        return self._source.texts

    @property
    def targets(self) -> tuple[str, ...] | None:
        return self._target.texts if self._target is not None else None

    @property
    def truncated(self) -> tuple[bool, ...]:
        """Per text: True when the text (or its target) was cut at the model's maximum length."""
        other = self._source.truncated if self._target is None else self._target.truncated
        return tuple(a or b for a, b in zip(self._source.truncated, other, strict=True))

    def __len__(self) -> int:
        return len(self.texts)

    def tokens(self, text_id: int = 0, *, side: str = "source") -> tuple[str, ...]:
        """Tokens of text ``text_id`` (``side="target"``: of the decoder input)."""
        return self._side(side).tokens[self._check_text(text_id)]

    def words(self, text_id: int = 0, *, side: str = "source") -> tuple[str, ...]:
        """Word units of text ``text_id``: original substrings, special tokens as their own."""
        return self._side(side).unit_labels[self._check_text(text_id)]

    def _side(self, side: str) -> Side:
        if one_of(side, SIDES, "side") == "source":
            return self._source
        if self._target is None:
            raise ValueError("side='target' needs an encoder-decoder model; this result has only "
                             "side='source'")
        return self._target

    def sides(self, attention: str = "self") -> tuple[Side, Side]:
        """The (query, key) token bookkeeping of one kind of map (a key of ``maps``)."""
        self._check_attention(attention)
        if attention == "self":
            return self._source, self._source
        if attention == "decoder":
            return self._target, self._target
        return self._target, self._source

    def _check_attention(self, attention: str) -> str:
        return one_of(attention, self.maps, "attention")

    def _check_text(self, text_id: int) -> int:
        if isinstance(text_id, bool) or not isinstance(text_id, (int, np.integer)) or \
                not 0 <= text_id < len(self.texts):
            raise IndexError(f"text_id {text_id!r} is out of range; valid: 0..{len(self.texts) - 1}")
        return int(text_id)

    def _check_level(self, level: str) -> str:
        return one_of(level, LEVELS, "level")

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
            query_side, key_side = self.sides(attention)
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
        query = self.query_index(i, query)
        row = self.rollout_matrix(i)[query]
        return self._fold_row(i, row, level)

    def flow(self, text_id: int = 0, *, query: int | None = None,
             level: str = "word") -> np.ndarray:
        """Attention flow from token ``query`` (default as in ``rollout``) over tokens or word
        units; sums to 1. At most ``FLOW_MAX_TOKENS`` tokens."""
        self._check_level(level)
        i = self._check_text(text_id)
        query = self.query_index(i, query)
        row = attention_flow(self._full_maps(i, "flow"), query=query)
        return self._fold_row(i, row, level)

    def query_index(self, text_id: int = 0, query: int | None = None) -> int:
        """The token position that ``rollout`` and ``flow`` read from: ``query`` checked, or the
        default (the first token, the last one for causal models)."""
        i = self._check_text(text_id)
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
        """``pandas.DataFrame``, one row per captured (layer, head): ``layer``, ``head``, one
        column per ``HEAD_STATISTICS`` key (mean over query rows, then texts), and ``importance``
        when computed (a ``"seq2seq-lm"``: of this ``attention`` stack; others: ``"self"``)."""
        import pandas as pd

        _, key_side = self.sides(attention)
        per_text = [head_statistics(maps, key_side.special[i])
                    for i, maps in enumerate(self.maps[attention])]
        layer_grid, head_grid = np.meshgrid(self.layers, self.heads, indexing="ij")
        frame = pd.DataFrame({"layer": layer_grid.ravel(), "head": head_grid.ravel()})
        for key in HEAD_STATISTICS:
            frame[key] = np.mean([s[key] for s in per_text], axis=0).ravel()
        found = self.importance.to_frame() if self.importance is not None else None
        if found is not None and ("attention" in found or attention == "self"):
            found = found[found["attention"] == attention] if "attention" in found else found
            frame = frame.merge(found[["layer", "head", "importance"]], on=["layer", "head"],
                                how="left")
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
            query_side, key_side = self.sides(kind)
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

    def tables(self) -> dict[str, Any]:
        """``"attention"``: ``to_frame()``; ``"head_statistics"``: ``head_statistics()`` (and
        ``"head_statistics_<kind>"`` for the decoder and cross maps of an encoder-decoder)."""
        tables = {"attention": self.to_frame()}
        for kind in self.maps:
            name = "head_statistics" if kind == "self" else f"head_statistics_{kind}"
            tables[name] = self.head_statistics(attention=kind)
        return tables

    def applicable_plots(self, text_id: int = 0) -> tuple[str, ...]:
        """Every kind for text ``text_id``, except rollout and flow unless every layer and head
        was captured, and flow when the text is longer than ``FLOW_MAX_TOKENS`` tokens."""
        i = self._check_text(text_id)
        full = self.layers == tuple(range(self.n_layers)) and \
            self.heads == tuple(range(self.n_heads))
        short = len(self._source.tokens[i]) <= FLOW_MAX_TOKENS
        return tuple(kind for kind in self.PLOTS
                     if (kind not in ("rollout", "flow", "rollout_image") or full)
                     and (kind != "flow" or short))

    def _plot(self, kind: str, *, ax=None, text_id: int = 0, layer: int | None = None,
              head: int | None = None, level: str | None = None, attention: str = "self",
              hide_special: bool = False, statistic: str = "entropy",
              query: int | None = None):
        if level is None:
            level = "word" if kind in ("rollout", "flow") else "token"
        self._check_level(level)
        if kind == "head_summary":
            return figures.head_summary_figure(self, ax=ax, statistic=statistic,
                                               attention=attention)
        if kind == "grid" and ax is not None:
            raise ValueError("plot('grid') draws a grid of axes and takes no ax=; call it "
                             "without ax")
        i = self._check_text(text_id)
        if kind == "head":
            return figures.head_figure(self, ax=ax, text_id=i,
                                       layer=self.layers[self._layer_position(layer)],
                                       head=self.heads[0] if head is None else head, level=level,
                                       attention=attention, hide_special=hide_special)
        if kind == "grid":
            return figures.grid_figure(self, text_id=i, level=level, attention=attention,
                                       hide_special=hide_special)
        return figures.bars_figure(self, kind, ax=ax, text_id=i, level=level, query=query,
                                   hide_special=hide_special)

    # ---- notebook / HTML

    def summary(self) -> str:
        kinds = ", ".join(self.maps)
        truncated = sum(self.truncated)
        note = f"; {truncated} truncated" if truncated else ""
        n = len(self.texts)
        return (f"{n} {'text' if n == 1 else 'texts'}, {kinds} attention, layers "
                f"{_ranges(self.layers)} × heads {_ranges(self.heads)} of "
                f"{self.model_name}{note}")

    def view_html(self, *, element_id: str | None = None, max_tokens: int = 128) -> str:
        """The interactive head/model view as an HTML fragment (inline JS/CSS, no network)."""
        return render_view(self, element_id=element_id, max_tokens=max_tokens)

    def _repr_html_(self) -> str:
        return self.view_html()

    def save_html(self, path: str | os.PathLike, *, max_tokens: int = 128) -> Path:
        """Write the interactive view as one standalone, offline HTML file (atomically)."""
        target = Path(path)
        page = render_page(self, max_tokens=max_tokens)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_text(page, encoding="utf-8")
        tmp.replace(target)
        return target

    def content_hash(self) -> str:
        """12 hex digits of a SHA-256 over the maps and the texts (a stable id of the content)."""
        digest = hashlib.sha256()
        for kind, arrays in self.maps.items():
            digest.update(kind.encode())
            for a in arrays:
                digest.update(np.ascontiguousarray(a).tobytes())
        for text in self.texts:
            digest.update(text.encode())
        return digest.hexdigest()[:12]


class ImageAttentionResult(AttentionResult):
    """Attention maps of a batch of images (a vision transformer on ``nn.MultiheadAttention``).

    Token 0 is ``[CLS]`` (flagged special), token ``1 + r * cols + c`` the patch in row ``r``,
    column ``c``, named ``r<r>c<c>``; ``texts`` are ``"image <i>"`` and ``text_id`` is the image
    index. ``images``: ``(N, C, H, W)`` float32 pixels as read; ``patch_grid``: ``(rows, cols)``.
    All of ``AttentionResult`` applies (a patch is its own word unit); ``mean_distance`` and
    ``previous_share`` of ``head_statistics`` count token positions in row-major order, not
    distances on the image. Plot options of the image kinds: ``image_id``, ``query`` (default
    ``[CLS]``).
    """

    PLOTS: Mapping[str, str] = MappingProxyType({
        "rollout_image": "attention rollout of [CLS] over the patches, a heat overlay on the image",
        "heads_image": "attention of [CLS] over the patches in every layer and head, on the image",
        **AttentionResult.PLOTS})
    PLOT_OPTIONS: Mapping[str, tuple[str, ...]] = MappingProxyType({
        "rollout_image": ("image_id", "query"), "heads_image": ("image_id", "query"),
        **AttentionResult.PLOT_OPTIONS})

    def __init__(self, *, images: np.ndarray, patch_grid: tuple[int, int], **fields) -> None:
        self.images = np.asarray(images, dtype=np.float32)
        self.images.setflags(write=False)
        self.patch_grid = (int(patch_grid[0]), int(patch_grid[1]))
        super().__init__(target=None, causal=False, **fields)

    def patch_rollout(self, image_id: int = 0, *, query: int | None = None) -> np.ndarray:
        """Rollout row of token ``query`` (default ``[CLS]``) over the patches, shape
        ``patch_grid``, renormalised to sum to 1 over the patches: the share the row keeps on
        ``[CLS]`` itself (``rollout(i, level="token")[0]``) is left out."""
        row = self.rollout(image_id, query=query, level="token")[1:]
        return (row / row.sum()).reshape(self.patch_grid)

    def patch_attention(self, image_id: int = 0, *, layer: int | None = None,
                        head: int | None = None, query: int | None = None) -> np.ndarray:
        """Attention of token ``query`` (default ``[CLS]``) over the patches in one layer and
        head (``head=None``: the mean of the captured heads), shape ``patch_grid``; not
        renormalised, so it sums to 1 minus the weight on the ``[CLS]`` key."""
        row = self.matrix(image_id, layer=layer, head=head)[self.query_index(image_id, query)]
        return row[1:].reshape(self.patch_grid)

    def _plot(self, kind: str, *, ax=None, image_id: int = 0, query: int | None = None,
              **options):
        if kind == "rollout_image":
            return figures.rollout_image_figure(self, ax=ax, image_id=self._check_text(image_id),
                                                query=query)
        if kind == "heads_image":
            if ax is not None:
                raise ValueError("plot('heads_image') draws a grid of axes and takes no ax=")
            return figures.heads_image_figure(self, image_id=self._check_text(image_id),
                                              query=query)
        return super()._plot(kind, ax=ax, query=query, **options)


def _ranges(values: Sequence[int]) -> str:
    values = list(values)
    if values and values == list(range(values[0], values[-1] + 1)):
        return f"{values[0]}..{values[-1]}" if len(values) > 1 else str(values[0])
    return ", ".join(map(str, values))
