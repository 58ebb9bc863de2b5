"""What an attribution explains and against what: class targets (a label, an index, a
contrast ``"A-B"``), language-model target tokens (continuations, the mask) and whether they
fit the context, an encoder-decoder's target sequences, and the baseline token of text."""

from __future__ import annotations

import re

import numpy as np
import torch

from ..text import model_max_length

__all__ = ["GENERATED_TOKENS", "assign_class_targets", "baseline_token", "continuation_fits",
           "continuation_texts", "decoder_targets", "encoder_embedding", "mask_in_context",
           "resolve_class_target", "token_id"]


def resolve_class_target(loaded, target) -> tuple[int, int] | None:
    """``None`` (predicted) or (class, contrast class or -1)."""
    names = list(loaded.label_names or ())
    if target is None:
        return None
    if isinstance(target, tuple):
        if len(target) != 2:
            raise ValueError(f"a contrast target is a pair (class A, class B), got {target!r}")
        a, b = (loaded.label_index(t) for t in target)
        return a, b
    if isinstance(target, str) and target not in names and "-" in target:
        for cut in [m.start() for m in re.finditer("-", target)]:
            first, second = target[:cut], target[cut + 1:]
            if first in names and second in names:
                return names.index(first), names.index(second)
        raise ValueError(f"unknown target {target!r}: not a label and not a contrast 'A-B' of "
                         f"two labels; valid labels: {', '.join(map(repr, names))}")
    if isinstance(target, (int, np.integer)) and not isinstance(target, bool):
        target = int(target)
        if not names:
            raise ValueError("this model has no label names; pass a class index")
    return loaded.label_index(target), -1


def token_id(loaded, token) -> int:
    tokenizer = loaded.tokenizer
    if isinstance(token, (int, np.integer)) and not isinstance(token, bool):
        if not 0 <= int(token) < len(tokenizer):
            raise ValueError(f"token id {token} is outside the vocabulary (0..{len(tokenizer) - 1})")
        return int(token)
    if not isinstance(token, str) or not token:
        raise TypeError(f"a language-model target is a token string or id, got {token!r}")
    ids = tokenizer(token, add_special_tokens=False)["input_ids"]
    if len(ids) != 1:
        pieces = tokenizer.convert_ids_to_tokens(ids)
        raise ValueError(f"target {token!r} is {len(ids)} tokens {pieces}, not one; pass a "
                         f"single token (e.g. {pieces[0]!r}) or use continuation= to explain "
                         f"each token of a longer continuation")
    return int(ids[0])


def assign_class_targets(loaded, items: list, target) -> None:
    """Set the target (and contrast) of each ``Item`` of a classifier."""
    if isinstance(target, list):
        if len(target) != len(items):
            raise ValueError(f"got {len(target)} targets for {len(items)} inputs; pass one "
                             f"target, or one per input")
        specs = [resolve_class_target(loaded, t) for t in target]
    else:
        specs = [resolve_class_target(loaded, target)] * len(items)
    for item, spec in zip(items, specs, strict=True):
        if spec is not None:
            item.target, item.contrast = spec


def baseline_token(loaded, baseline) -> int:
    tokenizer = loaded.tokenizer
    if baseline is None:
        if tokenizer.pad_token_id is None:
            raise ValueError("the tokenizer has no pad token to build the baseline from; pass "
                             "baseline= a token string or id (e.g. the mask token)")
        return int(tokenizer.pad_token_id)
    if isinstance(baseline, (str, int, np.integer)) and not isinstance(baseline, bool):
        if isinstance(baseline, str):
            found = tokenizer.convert_tokens_to_ids(baseline)
            if found is None or (found == tokenizer.unk_token_id and baseline != tokenizer.unk_token):
                raise ValueError(f"baseline token {baseline!r} is not in the vocabulary; pass "
                                 f"a token such as {tokenizer.pad_token!r}")
            return int(found)
        return token_id(loaded, int(baseline))
    raise TypeError(f"a text baseline is a token string or id (every non-special token is "
                    f"replaced by it), got {type(baseline).__name__}")

def continuation_texts(continuation, n_texts: int) -> list[str]:
    """``continuation=`` as one non-empty string per text (one string serves every text)."""
    if isinstance(continuation, str):
        continuation = [continuation] * n_texts
    continuation = list(continuation)
    if len(continuation) != n_texts:
        raise ValueError(f"got {len(continuation)} continuations for {n_texts} texts")
    for i, c in enumerate(continuation):
        if not isinstance(c, str) or not c:
            raise ValueError(f"continuation[{i}] is empty: {c!r}")
    return continuation


def continuation_fits(tokenizer, batch, i: int, prompt: str, continuation: str) -> None:
    """A left-truncated prompt + continuation must keep one prompt token before the
    continuation (its first token is explained from the tokens before it), else the
    continuation alone does not fit: ``ValueError`` with the lengths."""
    kept = [start for (start, _), special in zip(batch.offsets[i], batch.special[i],
                                                  strict=True) if not special]
    if kept and kept[0] < len(prompt):
        return
    offsets = tokenizer(prompt + continuation, add_special_tokens=False,
                        return_offsets_mapping=True)["offset_mapping"]
    n_continuation = sum(end > len(prompt) for _, end in offsets)
    n_special = batch.lengths[i] - len(kept)
    raise ValueError(f"continuation[{i}] is {n_continuation} tokens, but the model reads at "
                     f"most {batch.max_length} tokens ({n_special} of them special) and the "
                     f"first continuation token needs at least one prompt token before it; "
                     f"shorten the continuation to at most {batch.max_length - n_special - 1} "
                     f"tokens (a too-long prompt is cut from its start, so any prompt length "
                     f"works)")


def mask_in_context(loaded, batch, i: int) -> None:
    """``ValueError`` when text ``i`` of a truncated ``batch`` has its mask token only after
    its truncation point (a masked LM explains the token at the mask)."""
    tokenizer = loaded.tokenizer
    ids = tokenizer(batch.texts[i])["input_ids"]
    if tokenizer.mask_token_id not in ids:
        return
    limit = model_max_length(tokenizer, loaded.family.max_positions(loaded.model))
    raise_limit = (f", or raise max_length (now {batch.max_length}; the model reads up to "
                   f"{limit})" if batch.max_length < limit else "")
    raise ValueError(f"texts[{i}] has its {tokenizer.mask_token!r} token at token "
                     f"{ids.index(tokenizer.mask_token_id)} of {len(ids)}, beyond the model's "
                     f"context limit of {batch.max_length} tokens the text was truncated to; "
                     f"shorten the text (keep the sentences around the mask) or put the mask "
                     f"earlier{raise_limit}")


#: The most tokens an encoder-decoder generates when ``attribute`` explains its own output.
GENERATED_TOKENS = 64


def encoder_embedding(model) -> tuple[str, torch.nn.Module]:
    """Dotted name and module of an encoder-decoder's *encoder* token embedding (T5 and BART
    share its matrix with the decoder; only the encoder's lookup is attributed)."""
    encoder = model.get_encoder()
    embedding = getattr(encoder, "embed_tokens", None)
    if embedding is None:
        embedding = encoder.get_input_embeddings()
    prefix = next((n for n, m in model.named_modules() if m is encoder), None)
    if not isinstance(embedding, torch.nn.Embedding) or prefix is None:
        raise TypeError(f"{type(model).__name__}'s encoder has no token embedding "
                        f"(nn.Embedding) to attribute the source through")
    name = next((n for n, m in encoder.named_modules() if m is embedding), "embed_tokens")
    return f"{prefix}.{name}" if prefix else name, embedding


def decoder_targets(loaded, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                    continuation: list[str] | None) -> list[tuple[list[int], list[int]]]:
    """Per source row, ``(decoder_ids, explained)``: the decoder sequence, starting with the
    model's ``decoder_start_token_id``, and the indices into it of the tokens explained (each
    predicted from the tokens before it). With ``continuation`` the targets are its tokens
    (no special tokens added), all explained (more than the decoder's position limit less its
    start token is a ``ValueError``: a target is never truncated); without, the model's greedy
    output
    (``generate(do_sample=False, num_beams=1)``, at most ``GENERATED_TOKENS`` tokens and the
    decoder's position limit), up to its first end-of-sequence token, special tokens kept in
    the prefix but not explained."""
    model, tokenizer = loaded.model, loaded.tokenizer
    start = getattr(model.config, "decoder_start_token_id", None)
    if start is None:
        raise ValueError(f"{type(model).__name__}'s config has no decoder_start_token_id, so "
                         f"its decoder has no first input; set model.config."
                         f"decoder_start_token_id (e.g. to its pad or eos token id)")
    out = []
    limit = loaded.family.max_positions(model)
    if continuation is not None:
        for i, text in enumerate(continuation):
            ids = tokenizer(text, add_special_tokens=False)["input_ids"]
            if not ids:
                raise ValueError(f"continuation[{i}] {text!r} has no token")
            if limit is not None and len(ids) + 1 > limit:
                raise ValueError(f"continuation[{i}] is {len(ids)} tokens, but the decoder reads "
                                 f"at most {limit} positions (its start token and {limit - 1} "
                                 f"target tokens); shorten the target text to at most "
                                 f"{limit - 1} tokens")
            out.append(([int(start), *ids], list(range(1, len(ids) + 1))))
        return out
    new_tokens = GENERATED_TOKENS if limit is None else min(GENERATED_TOKENS, limit - 1)
    with torch.no_grad():
        generated = model.generate(input_ids=input_ids, attention_mask=attention_mask,
                                   decoder_start_token_id=start, do_sample=False, num_beams=1,
                                   max_new_tokens=new_tokens)
    special = set(tokenizer.all_special_ids)
    eos = getattr(model.config, "eos_token_id", None)
    for row in generated.tolist():
        ids = [int(start)]
        for token in row[1:]:
            if token == eos:
                break
            ids.append(token)
        explained = [j for j in range(1, len(ids)) if ids[j] not in special]
        if not explained:
            raise ValueError(f"the model generated no token to explain for source {len(out)} "
                             f"(output {tokenizer.convert_ids_to_tokens(row)}); pass "
                             f"continuation= the target text instead")
        out.append((ids, explained))
    return out
