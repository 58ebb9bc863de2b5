"""The word sets of an association test: the built-in and user-defined tests, the lookup of
words in word vectors, and the protocol's rules for leaving words out (the words Caliskan et al.
removed, balancing the target sets, the not-computable rule). ``explain.fairness.association``
runs the tests."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import numpy as np

__all__ = ["EXCLUSIONS", "WORD_SETS"]

#: The four word sets of a test, in the order of the formulas of
#: ``explain.fairness.association``.
WORD_SETS: Mapping[str, str] = MappingProxyType({
    "first_target": "X, e.g. flowers",
    "second_target": "Y, e.g. insects",
    "first_attribute": "A, e.g. pleasant",
    "second_attribute": "B, e.g. unpleasant",
})


#: Why a listed word was not used: the ``reason`` column of ``AssociationResult.excluded``.
EXCLUSIONS: Mapping[str, str] = MappingProxyType({
    "removed by Caliskan et al. 2017": "a word the paper excluded (names too rare in GloVe "
                                       "Common Crawl, and as many of the other list at random)",
    "no vector": "the embedding has no vector for the word (with the list's case, or also "
                 "lower-cased when fold_case=True)",
    "dropped to balance": "dropped at random (seeded) so both target sets have the same size",
})


def _check_tests(tests: Any) -> dict[str, dict]:
    """Built-in names, or user-defined tests, -> name -> test dict (the weat.json layout)."""
    from .. import datasets

    if tests is None:
        return datasets.weat_tests()
    if isinstance(tests, str):
        tests = [tests]
    if isinstance(tests, Mapping):
        if set(WORD_SETS) <= set(tests):  # a single test given directly
            tests = {"custom": tests}
        out = {}
        for name, test in tests.items():
            if not isinstance(test, Mapping):
                raise TypeError(f"test {name!r} must be a dict with keys {', '.join(WORD_SETS)}")
            missing = [k for k in WORD_SETS if k not in test]
            if missing:
                raise ValueError(f"test {name!r} lacks {missing}; a test has the word sets "
                                 f"{', '.join(WORD_SETS)} (each a list of words or a dict with "
                                 f"'name', 'words' and optionally 'remove')")
            out[str(name)] = {k: _word_set(test[k], k) for k in WORD_SETS} | {
                "name": str(test.get("name", name)),
                "original_finding": dict(test.get("original_finding") or {})}
        return out
    built_in = datasets.weat_tests()
    out = {}
    for name in tests:
        if name not in built_in:
            import difflib

            close = difflib.get_close_matches(str(name), list(built_in), n=3)
            raise ValueError(f"unknown association test {name!r}; built-in: "
                             f"{', '.join(built_in)}" + (f" (did you mean {close[0]!r}?)"
                                                         if close else ""))
        out[name] = built_in[name]
    return out


def _word_set(value: Any, key: str) -> dict:
    if isinstance(value, Mapping):
        words = list(value.get("words", []))
        name = str(value.get("name", key))
        remove = list(value.get("remove", []))
    else:
        words = [value] if isinstance(value, str) else list(value)
        name, remove = key, []
    if not words or not all(isinstance(w, str) and w.strip() for w in words):
        raise ValueError(f"word set {key!r} must be a non-empty list of non-empty strings, got "
                         f"{words!r}")
    unknown = [w for w in remove if w not in words]
    if unknown:
        raise ValueError(f"word set {key!r}: 'remove' lists {unknown}, which are not among its "
                         f"words; 'remove' names words of 'words' that the protocol leaves out")
    return {"name": name, "words": words, "remove": remove}


def _lookup(vectors: Any) -> tuple[dict[str, int], np.ndarray, str]:
    """(word -> row, matrix, description) from ``(words, matrix)`` or a ``{word: vector}``."""
    if vectors is None:
        from .. import datasets

        words, matrix = datasets.word2vec()
        return ({w: i for i, w in enumerate(words)}, matrix,
                "word2vec GoogleNews (Bolukbasi et al. subset)")
    if isinstance(vectors, Mapping):
        words = list(vectors)
        matrix = np.stack([np.asarray(vectors[w], dtype=np.float64) for w in words])
        return {w: i for i, w in enumerate(words)}, matrix, f"{len(words)} user vectors"
    if isinstance(vectors, tuple) and len(vectors) == 2:
        words, matrix = vectors
        matrix = np.asarray(matrix)
        if matrix.ndim != 2 or len(matrix) != len(words):
            raise ValueError(f"vectors=(words, matrix) needs one matrix row per word; got "
                             f"{len(words)} words and a matrix of shape {matrix.shape}")
        return {w: i for i, w in enumerate(words)}, matrix, f"{len(words)} user vectors"
    raise TypeError("vectors must be None (word2vec), a (words, matrix) pair or a "
                    "{word: vector} mapping")


def _balance(words: dict[str, list[str]], seed: int) -> tuple[dict, list[tuple[str, str]]]:
    """Drop words of the larger target set at random (``default_rng(seed)``, the listed order
    kept) until both target sets have the size of the smaller one."""
    x, y = words["first_target"], words["second_target"]
    size = min(len(x), len(y))
    key = "first_target" if len(x) > size else "second_target"
    larger = words[key]
    if len(larger) == size:
        return words, []
    keep = np.sort(np.random.default_rng(seed).choice(len(larger), size=size, replace=False))
    kept = [larger[i] for i in keep]
    return words | {key: kept}, [(key, w) for w in larger if w not in kept]


def _not_computable(test, words, counts, min_words, min_share) -> str:
    """Why the test cannot be run on the words with a vector (before balancing), or ''."""
    for key in WORD_SETS:
        have, listed = counts[key]
        if have < min_share * listed or not have:
            return (f"{test[key]['name']}: {have} of {listed} words have a vector "
                    f"(min_share={min_share:g})")
    for key in ("first_target", "second_target"):
        if len(words[key]) < min_words:
            return (f"{test[key]['name']}: {len(words[key])} words have a vector "
                    f"(min_words={min_words})")
    return ""
