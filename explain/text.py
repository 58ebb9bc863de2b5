"""Tokenising texts with the bookkeeping every text analysis needs: offsets, words, truncation.

Words are the tokenizer's own pre-tokenisation words (``encoding.word_ids()`` of a fast
tokenizer: for BERT, runs of letters/digits and single punctuation marks; for GPT-2, a word with
its leading space). Each word is reported as the span of the original string it covers, so a
word-level view shows exactly the user's characters. Special tokens (``[CLS]``, ``[SEP]``) belong
to no word (word index ``-1``).

Folding rules (used by attention and attributions alike):

* token scores -> word scores: **sum** over the word's tokens (sums are preserved);
* attention ``(query, key)`` -> words: **sum over key pieces, mean over query pieces**, so every
  row still sums to 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
import pandas as pd
import torch

from .checks import one_of
from .errors import ExplainWarning

__all__ = ["TRUNCATION_SIDES", "TextBatch", "encode_texts", "fold_matrix", "fold_scores",
           "read_texts", "word_units"]


#: Which end of a too-long text ``encode_texts`` cuts off (special tokens are always kept).
TRUNCATION_SIDES = MappingProxyType({
    "right": "keep the first max_length tokens (the start of the text)",
    "left": "keep the last max_length tokens (the end of the text): a causal LM's next token "
            "then follows the end of its prompt",
})


@dataclass(frozen=True)
class TextBatch:
    """A padded batch of ``B`` texts and, per text, its unpadded token-level bookkeeping.

    Tensors: ``input_ids``, ``attention_mask`` (and ``token_type_ids`` when the model uses them)
    of shape ``(B, T)``, right-padded. Per text ``i`` (lists of length ``lengths[i]``, the number
    of real tokens): ``tokens[i]`` token strings; ``offsets[i]`` ``(start, end)`` character spans
    into ``texts[i]`` (``(0, 0)`` for special tokens); ``special[i]`` booleans; ``word_index[i]``
    the word each token belongs to (``-1`` for special tokens). Per word: ``words[i]`` the
    original substring and ``word_spans[i]`` its span. ``truncated[i]`` is True when the text did
    not fit in ``max_length`` tokens. With text pairs, ``segment[i]`` gives 0/1 per token
    (``-1`` for special tokens) and word spans index into ``texts[i]`` or ``text_pairs[i]``.
    """

    texts: tuple[str, ...]
    text_pairs: tuple[str, ...] | None
    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    token_type_ids: torch.Tensor | None
    lengths: tuple[int, ...]
    tokens: tuple[tuple[str, ...], ...]
    offsets: tuple[tuple[tuple[int, int], ...], ...]
    special: tuple[tuple[bool, ...], ...]
    segment: tuple[tuple[int, ...], ...]
    word_index: tuple[tuple[int, ...], ...]
    words: tuple[tuple[str, ...], ...]
    word_spans: tuple[tuple[tuple[int, int], ...], ...]
    truncated: tuple[bool, ...]
    max_length: int

    def __len__(self) -> int:
        return len(self.texts)

    def model_inputs(self, rows: slice | Sequence[int] | None = None) -> dict[str, torch.Tensor]:
        """Keyword arguments for the model's forward, optionally for a subset of rows."""
        inputs = {"input_ids": self.input_ids, "attention_mask": self.attention_mask}
        if self.token_type_ids is not None:
            inputs["token_type_ids"] = self.token_type_ids
        if rows is not None:
            inputs = {k: v[rows] for k, v in inputs.items()}
        return inputs


def _check_texts(texts: Sequence[str] | str, what: str) -> list[str]:
    if isinstance(texts, str):
        texts = [texts]
    texts = list(texts)
    if not texts:
        raise ValueError(f"no {what} given; pass one string or a non-empty list of strings")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"{what}[{i}] is {type(text).__name__}, not str: {text!r}")
        if not text.strip():
            raise ValueError(f"{what}[{i}] is empty or only whitespace: {text!r}; remove it")
    return texts


def model_max_length(tokenizer, max_positions: int | None = None) -> int:
    """Largest sequence the model accepts: the smaller of the tokenizer's limit and
    ``max_positions`` (the model family's position limit, ``Family.max_positions``)."""
    limits = []
    tokenizer_limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(tokenizer_limit, int) and 0 < tokenizer_limit < 1_000_000:
        limits.append(tokenizer_limit)
    if isinstance(max_positions, int) and max_positions > 0:
        limits.append(max_positions)
    return min(limits) if limits else 512


def encode_texts(
    tokenizer,
    texts: Sequence[str] | str,
    *,
    text_pairs: Sequence[str] | str | None = None,
    max_length: int | None = None,
    max_positions: int | None = None,
    truncation_side: str = "right",
) -> TextBatch:
    """Tokenise ``texts`` (optionally paired with ``text_pairs``) into a ``TextBatch``.

    Texts longer than ``max_length`` tokens (default: the model's limit) are truncated, flagged
    in ``truncated``, and an ``ExplainWarning`` says which. ``truncation_side`` (one of
    ``TRUNCATION_SIDES``) says which end is cut off: ``"right"`` keeps the start, ``"left"`` the
    end; offsets and words still index into the original texts. Empty texts raise
    ``ValueError``.
    """
    import warnings

    one_of(truncation_side, TRUNCATION_SIDES, "truncation_side")
    texts = _check_texts(texts, "texts")
    pairs = None
    if text_pairs is not None:
        pairs = _check_texts(text_pairs, "text_pairs")
        if len(pairs) != len(texts):
            raise ValueError(f"got {len(texts)} texts but {len(pairs)} text_pairs; pass one "
                             f"pair per text")
    if not getattr(tokenizer, "is_fast", False):
        raise TypeError(f"{type(tokenizer).__name__} is a slow tokenizer; explain needs a fast "
                        f"tokenizer (offsets and word ids): load it with use_fast=True")
    limit = model_max_length(tokenizer, max_positions)
    if max_length is None:
        max_length = limit
    elif not isinstance(max_length, int) or max_length < 2:
        raise ValueError(f"max_length must be an int >= 2, got {max_length!r}")
    elif max_length > limit:
        raise ValueError(f"max_length={max_length} exceeds the model's limit of {limit} tokens")

    args = (texts, pairs) if pairs is not None else (texts,)
    # The side is tokenizer state (a truncation_side= keyword is silently ignored): set it for
    # this call only and put the caller's back.
    side = tokenizer.truncation_side
    tokenizer.truncation_side = truncation_side
    try:
        enc = tokenizer(*args, add_special_tokens=True, truncation=True, max_length=max_length,
                        padding=True, return_tensors="pt", return_offsets_mapping=True,
                        return_special_tokens_mask=True)
    finally:
        tokenizer.truncation_side = side
    n = enc["input_ids"].shape[0]
    mask = enc["attention_mask"]
    lengths = tuple(int(v) for v in mask.sum(1))
    # A fast tokenizer keeps what truncation cut off: no second, untruncated pass is needed.
    truncated = tuple(bool(encoding.overflowing) for encoding in enc.encodings)
    if any(truncated):
        which = [i for i, t in enumerate(truncated) if t]
        kept = "start" if truncation_side == "right" else "end"
        warnings.warn(f"texts {which} are longer than {max_length} tokens and were truncated "
                      f"(their {kept} kept); the result marks them in `truncated`",
                      ExplainWarning, stacklevel=3)

    tokens, offsets, special, segment, word_index, words, word_spans = [], [], [], [], [], [], []
    for i in range(n):
        length = lengths[i]
        ids = enc["input_ids"][i, :length].tolist()
        # Right padding is asserted by construction: positions >= length are padding.
        if int(mask[i, :length].sum()) != length:
            raise RuntimeError("explain expects right-padding; set tokenizer.padding_side='right'")
        tokens.append(tuple(tokenizer.convert_ids_to_tokens(ids)))
        spans = [tuple(int(x) for x in span) for span in enc["offset_mapping"][i, :length].tolist()]
        is_special = [bool(v) for v in enc["special_tokens_mask"][i, :length].tolist()]
        seq_ids = enc.sequence_ids(i)[:length]
        wids = enc.word_ids(i)[:length]
        seg = [(-1 if s is None or sp else int(s)) for s, sp in zip(seq_ids, is_special, strict=True)]
        # Words are keyed by (segment, tokenizer word id); number them in order of appearance.
        keys, index = {}, []
        word_list, span_list, word_segment = [], [], []
        for t in range(length):
            if is_special[t] or wids[t] is None:
                index.append(-1)
                if is_special[t]:
                    spans[t] = (0, 0)
                continue
            key = (seg[t], wids[t])
            if key not in keys:
                keys[key] = len(keys)
                span_list.append(list(spans[t]))
                word_segment.append(seg[t])
            else:
                span = span_list[keys[key]]
                span[0], span[1] = min(span[0], spans[t][0]), max(span[1], spans[t][1])
            index.append(keys[key])
        for span, word_seg in zip(span_list, word_segment, strict=True):
            source = pairs[i] if pairs is not None and word_seg == 1 else texts[i]
            # Byte-level BPE offsets include the leading space of a word; a word is its
            # characters only.
            while span[0] < span[1] and source[span[0]].isspace():
                span[0] += 1
            word_list.append(source[span[0]:span[1]])
        offsets.append(tuple(spans))
        special.append(tuple(is_special))
        segment.append(tuple(seg))
        word_index.append(tuple(index))
        words.append(tuple(word_list))
        word_spans.append(tuple((s, e) for s, e in span_list))

    return TextBatch(
        texts=tuple(texts), text_pairs=tuple(pairs) if pairs is not None else None,
        input_ids=enc["input_ids"], attention_mask=mask,
        token_type_ids=enc.get("token_type_ids"), lengths=lengths, tokens=tuple(tokens),
        offsets=tuple(offsets), special=tuple(special), segment=tuple(segment),
        word_index=tuple(word_index), words=tuple(words), word_spans=tuple(word_spans),
        truncated=truncated, max_length=max_length,
    )


def fold_scores(scores: np.ndarray | torch.Tensor, word_index: Sequence[int]) -> np.ndarray:
    """Token scores ``(..., T)`` -> word scores ``(..., W)`` by summing each word's tokens.

    Tokens with word index ``-1`` (special tokens) are dropped. The total over words equals the
    total over non-special tokens.
    """
    scores = np.asarray(scores.detach().cpu() if isinstance(scores, torch.Tensor) else scores,
                        dtype=np.float64)
    index = np.asarray(word_index)
    if scores.shape[-1] != len(index):
        raise ValueError(f"scores have {scores.shape[-1]} tokens but word_index has {len(index)}")
    n_words = int(index.max()) + 1 if (index >= 0).any() else 0
    onehot = np.zeros((len(index), n_words))
    keep = index >= 0
    onehot[np.flatnonzero(keep), index[keep]] = 1.0
    return scores @ onehot


def word_units(batch: TextBatch, i: int) -> tuple[list[int], list[str], list[bool]]:
    """Token -> unit index for text ``i`` where every word is a unit and every special token is
    a unit of its own (so attention folded to units still has rows summing to 1).

    Returns ``(unit_index per token, unit labels, unit is_special)`` in token order.
    """
    unit_of_word: dict[int, int] = {}
    index, labels, specials = [], [], []
    for t, w in enumerate(batch.word_index[i]):
        if w < 0:
            index.append(len(labels))
            labels.append(batch.tokens[i][t])
            specials.append(True)
        else:
            if w not in unit_of_word:
                unit_of_word[w] = len(labels)
                labels.append(batch.words[i][w])
                specials.append(False)
            index.append(unit_of_word[w])
    return index, labels, specials


def _units_onehot(index: np.ndarray) -> np.ndarray:
    if (index < 0).any():
        raise ValueError("unit indices must map every token to a unit; use word_units() to keep "
                         "special tokens as units of their own")
    onehot = np.zeros((len(index), int(index.max()) + 1))
    onehot[np.arange(len(index)), index] = 1.0
    return onehot


def fold_matrix(matrix: np.ndarray | torch.Tensor, unit_index: Sequence[int],
                key_index: Sequence[int] | None = None) -> np.ndarray:
    """Attention ``(..., Tq, Tk)`` (rows = queries) -> ``(..., Uq, Uk)`` over units.

    Sum over the key tokens of a unit, mean over the query tokens of a unit, so rows that summed
    to 1 still sum to 1. ``unit_index`` maps every query token to a unit, ``key_index`` every key
    token (default: the same as the queries, i.e. self-attention; cross attention has its own).
    No ``-1``: see ``word_units``, which keeps special tokens as units of their own.
    """
    matrix = np.asarray(matrix.detach().float().cpu() if isinstance(matrix, torch.Tensor)
                        else matrix, dtype=np.float64)
    queries = np.asarray(unit_index)
    keys = queries if key_index is None else np.asarray(key_index)
    if matrix.shape[-2] != len(queries) or matrix.shape[-1] != len(keys):
        raise ValueError(f"matrix is {matrix.shape[-2:]} but the unit indices cover "
                         f"{len(queries)} query and {len(keys)} key tokens")
    q_onehot = _units_onehot(queries)
    return (q_onehot / q_onehot.sum(0)).T @ matrix @ _units_onehot(keys)


def read_texts(data: pd.DataFrame, column: str, rows: Sequence[int] | None = None) -> list[str]:
    """The texts of ``column`` (at the positions ``rows``, default all), checked.

    A missing cell would otherwise become the text ``'nan'`` (``str(NaN)``) and be analysed as
    a review saying "nan". Missing or blank cells raise ``ValueError`` and non-text values
    raise ``TypeError``, naming the column and the row positions (counting from 0) and the fix.
    """
    if column not in data.columns:
        import difflib

        close = difflib.get_close_matches(str(column), [str(c) for c in data.columns], n=3)
        hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ValueError(f"the text column {column!r} is not in the data{hint} "
                         f"(columns: {', '.join(map(str, data.columns))})")
    values = data[column]
    if rows is not None:
        values = values.iloc[list(rows)]
    texts = values.tolist()
    positions = list(range(len(data))) if rows is None else [int(r) for r in rows]

    def _listed(found: list[int]) -> str:
        shown = ", ".join(map(str, found[:10]))
        return shown + (f" and {len(found) - 10} more" if len(found) > 10 else "")

    missing = [p for p, t in zip(positions, texts, strict=True)
               if t is None or (not isinstance(t, str) and pd.isna(t))
               or (isinstance(t, str) and not t.strip())]
    if missing:
        raise ValueError(f"the text column {column!r} is empty or missing in {len(missing)} "
                         f"row(s) (positions counting from 0: {_listed(missing)}); drop those "
                         f"rows (data.dropna(subset=[{column!r}])) or fill them with the text "
                         f"they should have")
    wrong = [p for p, t in zip(positions, texts, strict=True) if not isinstance(t, str)]
    if wrong:
        example = texts[positions.index(wrong[0])]
        raise TypeError(f"the text column {column!r} holds non-text values in {len(wrong)} "
                        f"row(s) (positions counting from 0: {_listed(wrong)}; e.g. "
                        f"{example!r}); pass the column of texts, or convert it with "
                        f"data[{column!r}].astype(str) if these values are the texts")
    return texts
