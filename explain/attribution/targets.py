"""What an attribution explains and against what: class targets (a label, an index, a
contrast ``"A-B"``), language-model target tokens, and the baseline token of text."""

from __future__ import annotations

import re

import numpy as np

__all__ = ["assign_class_targets", "baseline_token", "resolve_class_target", "token_id"]


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
