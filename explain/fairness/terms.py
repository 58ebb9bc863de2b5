"""The sentences of a counterfactual probe: identity terms put into templates, or identity
words swapped in real sentences (``explain/data/identity_terms.json``)."""

from __future__ import annotations

import copy
import difflib
import functools
import json
import re
import warnings
from collections.abc import Mapping, Sequence
from importlib import resources
from typing import Any

from ..errors import ExplainWarning

__all__ = ["fill_template", "identity_terms", "swap_terms"]


@functools.lru_cache(maxsize=1)
def _data_text() -> str:
    return resources.files("explain").joinpath("data/identity_terms.json").read_text("utf-8")


def identity_terms() -> dict[str, Any]:
    """A fresh, editable copy of ``explain/data/identity_terms.json``: ``about`` (how the terms
    were chosen), ``sources``, ``axes`` (axis -> ``reference`` group and ``groups``: group ->
    terms), ``swaps`` (name -> ``pairs`` of words swapped in real sentences) and ``templates``."""
    return copy.deepcopy(json.loads(_data_text()))


def fill_template(template: str, term: str) -> str:
    """Put ``term`` at the ``{}`` of ``template``; a sentence that starts with it is capitalised."""
    if "{}" not in template:
        raise ValueError(f"template {template!r} has no '{{}}' placeholder for the identity "
                         f"term; write e.g. '{{}} wrote this review.'")
    text = template.replace("{}", term)
    return text[0].upper() + text[1:] if template.startswith("{}") else text


# After object "her" (told her that ...) rather than possessive "her" (her book).
_NOT_A_NOUN = frozenset(
    ["a", "an", "the", "this", "that", "these", "those", "and", "or", "but", "so", "as", "if", "when", "because", "to", "for", "with", "in", "on", "at", "from", "about", "up", "down", "out", "off", "into", "onto", "over", "by", "of", "again", "too", "back", "all", "some", "any", "here", "there", "now", "then", "very", "is", "was"])


def _case_like(word: str, model: str) -> str:
    if model.isupper() and len(model) > 1:
        return word.upper()
    if model[:1].isupper():
        return word[:1].upper() + word[1:]
    return word


def _swap_table(pairs: Sequence[Sequence[str]]) -> dict[str, list[str]]:
    table: dict[str, list[str]] = {}
    for pair in pairs:
        if len(pair) != 2 or not all(isinstance(w, str) and w for w in pair):
            raise ValueError(f"a swap is a pair of two words, got {pair!r}")
        a, b = pair
        table.setdefault(a.lower(), []).append(b)
        table.setdefault(b.lower(), []).append(a)
    return table


def swap_terms(text: str, pairs: Sequence[Sequence[str]]) -> tuple[str, list[tuple[str, str]]]:
    """Swap every word of ``pairs`` (both directions, whole words, case kept) in ``text``.

    Returns the new text and the ``(old, new)`` replacements made. A word with several partners
    ("her" -> "his"/"him") takes the first, except that "her" before punctuation, the end of
    the text or a function word ("told her that") becomes "him" (object) rather than "his"
    (possessive). This is a heuristic without a parser: check ``result.to_frame()['text']``.
    """
    table = _swap_table(pairs)
    if not table:
        return text, []
    pattern = re.compile(r"\b(" + "|".join(sorted(map(re.escape, table), key=len,
                                                      reverse=True)) + r")\b", re.IGNORECASE)
    made = []

    def replace(match: re.Match) -> str:
        word = match.group(0)
        options = table[word.lower()]
        new = options[0]
        if len(options) > 1 and word.lower() == "her":
            following = re.match(r"\s*(\w*)", text[match.end():]).group(1).lower()
            object_form = [o for o in options if o.lower() == "him"]
            if object_form and (not following or following in _NOT_A_NOUN):
                new = object_form[0]
        new = _case_like(new, word)
        made.append((word, new))
        return new

    return pattern.sub(replace, text), made



def _template_rows(data, axis, terms, reference, templates):
    if terms is None:
        axes = data["axes"]
        if axis not in axes:
            close = difflib.get_close_matches(axis, list(axes), n=2)
            raise ValueError(f"unknown identity axis {axis!r}; built-in: {', '.join(axes)}"
                             + (f" (did you mean {close[0]!r}?)" if close else "")
                             + "; or pass terms={group: [terms]}")
        groups = axes[axis]["groups"]
        default_reference = axes[axis].get("reference")
    else:
        if not isinstance(terms, Mapping) or not terms:
            raise ValueError("terms must be a non-empty mapping {group: [terms]}")
        groups = {str(g): list(v) for g, v in terms.items()}
        default_reference = None
        axis = "custom"
    for group, words in groups.items():
        if isinstance(words, str) or not words or not all(isinstance(w, str) and w.strip()
                                                         for w in words):
            raise ValueError(f"group {group!r} needs a non-empty list of terms, got {words!r}")
    if len(groups) < 2:
        raise ValueError(f"a counterfactual probe compares at least two groups; got "
                         f"{list(groups)}")
    reference = reference or default_reference or next(iter(groups))
    if reference not in groups:
        raise ValueError(f"reference group {reference!r} is not one of {list(groups)}")
    templates = list(templates) if templates is not None else data["templates"]["sentences"]
    if not templates:
        raise ValueError("no templates given")
    rows = []
    for t, template in enumerate(templates):
        for group, words in groups.items():
            for term in words:
                rows.append({"row": len(rows), "unit": t, "template": template, "group": group,
                             "term": term, "text": fill_template(template, term)})
    return rows, reference, {"design": "templates", "axis": axis, "n_templates": len(templates),
                             "groups": list(groups), "templates": templates}


def _swap_rows(data, texts, swaps):
    """Each sentence becomes a pair: its version with the first words of the pairs and its
    version with the second words (one of them is the original), so every change has the same
    direction (second group minus first group)."""
    if isinstance(texts, str):
        texts = [texts]
    texts = list(texts)
    if not texts:
        raise ValueError("texts is empty; pass real sentences to swap identity terms in")
    swaps = "gender" if swaps is None else swaps
    if isinstance(swaps, str):
        if swaps not in data["swaps"]:
            raise ValueError(f"unknown swap list {swaps!r}; built-in: "
                             f"{', '.join(data['swaps'])}, or pass [(word, word), ...]")
        name, pairs = swaps, data["swaps"][swaps]["pairs"]
        first_group, second_group = data["swaps"][swaps]["groups"]
    else:
        name, pairs = "custom", [list(p) for p in swaps]
        first_group, second_group = "first", "second"
    _swap_table(pairs)  # validates the pairs
    firsts = {a.lower() for a, _ in pairs}
    seconds = {b.lower() for _, b in pairs}
    rows, unchanged, mixed = [], 0, 0
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"texts[{i}] is {type(text).__name__}, not str")
        swapped, made = swap_terms(text, pairs)
        if not made:
            unchanged += 1
            continue
        sides = {("first" if old.lower() in firsts else "second") for old, _ in made
                 if (old.lower() in firsts) != (old.lower() in seconds)}
        if len(sides) != 1:
            mixed += 1
            continue
        old = ", ".join(dict.fromkeys(a for a, _ in made))
        new = ", ".join(dict.fromkeys(b for _, b in made))
        original_first = sides == {"first"}
        versions = [(first_group, old if original_first else new,
                     text if original_first else swapped, original_first),
                    (second_group, new if original_first else old,
                     swapped if original_first else text, not original_first)]
        for group, term, version, is_original in versions:
            rows.append({"row": len(rows), "unit": i, "template": "", "group": group,
                         "term": term, "text": version, "is_original": is_original})
    if not rows:
        raise ValueError(f"none of the {len(texts)} texts contains a word of the swap list "
                         f"{name!r} (on one side only); nothing to compare")
    if unchanged or mixed:
        warnings.warn(f"of {len(texts)} texts, {unchanged} contain no word of the swap list "
                      f"{name!r} and {mixed} contain words of both sides; they were left out",
                      ExplainWarning, stacklevel=3)
    return rows, first_group, {"design": "swaps", "swaps": name, "n_texts": len(texts),
                               "n_unchanged": unchanged, "n_mixed": mixed,
                               "groups": [first_group, second_group]}
