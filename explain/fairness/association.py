"""Association tests: WEAT (word vectors) and SEAT (sentence encoders).

WEAT (Caliskan, Bryson and Narayanan, Science 2017) asks whether two target word sets ``X``,
``Y`` (flowers, insects) differ in their association with two attribute sets ``A``, ``B``
(pleasant, unpleasant). With cosine similarity,

    s(w, A, B) = mean_{a in A} cos(w, a) - mean_{b in B} cos(w, b)
    effect size d = (mean_{x in X} s(x) - mean_{y in Y} s(y)) / std_{w in X u Y} s(w)   (ddof=1)
    statistic S  = sum_{x in X} s(x) - sum_{y in Y} s(y)

and the one-sided permutation p-value is the share of re-partitions of ``X u Y`` into sets of
the sizes of ``X`` and ``Y`` whose statistic is at least the observed one. ``s`` is computed
once for every target word; a permutation is then a sum of precomputed values over an index set,
so 100,000 permutations are one ``argpartition`` and one ``take`` on a matrix. When the number of
partitions is at most ``n_permutations`` they are all enumerated (exact p-value); otherwise
``n_permutations`` random partitions are drawn with ``seed`` and ``p = (k + 1) / (n + 1)``.
The effect size gets a percentile bootstrap interval by resampling the target words of each set
(attribute sets fixed).

SEAT (May et al., NAACL 2019) runs the same test on sentence embeddings: each word is put into
bleached templates ("This is {}.") and every sentence is one element of its set.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..errors import ExplainWarning
from ..results import TableResult, make_meta
from ._common import (
    check_confidence,
    check_count,
    interval_errors,
    percentile_interval,
    resolve_model,
)

__all__ = ["POOLINGS", "SEAT_TEMPLATES", "WORD_SETS", "AssociationResult", "association_test",
           "encode_sentences", "seat", "weat"]

#: The four word sets of a test, in the order of the formulas above.
WORD_SETS: Mapping[str, str] = MappingProxyType({
    "first_target": "X, e.g. flowers",
    "second_target": "Y, e.g. insects",
    "first_attribute": "A, e.g. pleasant",
    "second_attribute": "B, e.g. unpleasant",
})

#: How SEAT turns token states into one sentence vector.
POOLINGS: Mapping[str, str] = MappingProxyType({
    "mean": "mean of the token states under the attention mask (sentence-transformers' pooling)",
    "first": "the first token's state ([CLS] for BERT)",
    "last": "the last real token's state (for causal LMs)",
})

#: Bleached sentence templates of SEAT (May et al. 2019); "{}" is replaced by the word.
SEAT_TEMPLATES: tuple[str, ...] = ("This is {}.", "That is {}.", "There is {}.", "Here is {}.",
                                   "{} is here.", "{} is there.", "It is {}.", "This will be {}.")


def _normalise(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    if (norms == 0).any():
        raise ValueError("a word or sentence has an all-zero vector; cosine similarity is "
                         "undefined for it: remove it from the word set")
    return matrix / norms


def association_test(first_target: np.ndarray, second_target: np.ndarray,
                     first_attribute: np.ndarray, second_attribute: np.ndarray, *,
                     n_permutations: int = 100_000, n_bootstrap: int = 1000,
                     confidence: float = 0.95, seed: int = 0) -> dict[str, Any]:
    """The WEAT statistics of four sets of vectors (rows), each ``(n_i, dim)``.

    Returns ``effect_size``, ``statistic``, ``p_value``, ``p_value_method`` (``"exact"`` or
    ``"sampled"``), ``n_partitions`` (how many partitions were evaluated),
    ``effect_size_ci_low``/``effect_size_ci_high`` and ``association`` (``s(w, A, B)`` of every
    target word, X first).
    """
    x, y, a, b = (np.asarray(m, dtype=np.float64) for m in (first_target, second_target,
                                                              first_attribute, second_attribute))
    for name, m in zip(WORD_SETS, (x, y, a, b), strict=True):
        if m.ndim != 2 or len(m) == 0:
            raise ValueError(f"{name} must be a non-empty (n, dim) matrix, got shape {m.shape}")
    if len(x) + len(y) < 3:
        raise ValueError("the two target sets hold fewer than 3 words together; an effect size "
                         "needs a standard deviation over at least 3 words")
    n_permutations = check_count(n_permutations, "n_permutations", 1)
    n_bootstrap = check_count(n_bootstrap, "n_bootstrap")
    confidence = check_confidence(confidence)
    targets = _normalise(np.vstack([x, y]))
    s = targets @ _normalise(a).T
    s = s.mean(1) - (targets @ _normalise(b).T).mean(1)
    nx, n = len(x), len(s)
    total = s.sum()
    observed = 2 * s[:nx].sum() - total
    effect = (s[:nx].mean() - s[nx:].mean()) / s.std(ddof=1)

    count = math.comb(n, nx)
    if count <= n_permutations:
        method = "exact"
        sums = _exact_sums(s, nx)
        stats = 2 * sums - total
        # Floating sums of the same set in another order differ in the last bits.
        p_value = float(np.mean(stats >= observed - 1e-12 * max(1.0, abs(observed))))
        evaluated = count
    else:
        method = "sampled"
        rng = np.random.default_rng(seed)
        hits = 0
        chunk = max(1, 2_000_000 // n)
        for start in range(0, n_permutations, chunk):
            size = min(chunk, n_permutations - start)
            keys = rng.random((size, n))
            chosen = np.argpartition(keys, nx - 1, axis=1)[:, :nx] if nx < n else \
                np.broadcast_to(np.arange(n), (size, n))
            stats = 2 * s[chosen].sum(1) - total
            hits += int((stats >= observed - 1e-12 * max(1.0, abs(observed))).sum())
        p_value = (hits + 1) / (n_permutations + 1)
        evaluated = n_permutations

    low = high = float("nan")
    if n_bootstrap:
        rng = np.random.default_rng([seed, 1])
        sx = s[:nx][rng.integers(0, nx, size=(n_bootstrap, nx))]
        sy = s[nx:][rng.integers(0, n - nx, size=(n_bootstrap, n - nx))]
        both = np.concatenate([sx, sy], axis=1)
        with np.errstate(all="ignore"):
            d = (sx.mean(1) - sy.mean(1)) / both.std(1, ddof=1)
        d[~np.isfinite(d)] = np.nan
        low, high = (float(v) for v in percentile_interval(d, confidence))
    return {"effect_size": float(effect), "statistic": float(observed), "p_value": p_value,
            "p_value_method": method, "n_partitions": int(evaluated),
            "effect_size_ci_low": low, "effect_size_ci_high": high, "association": s}


def _exact_sums(s: np.ndarray, k: int, block: int = 200_000) -> np.ndarray:
    """Sums of ``s`` over every ``k``-subset, in ``itertools.combinations`` order (blocks of
    ``block`` index rows at a time)."""
    combos = itertools.combinations(range(len(s)), k)
    out = []
    while True:
        rows = list(itertools.islice(combos, block))
        if not rows:
            break
        out.append(s[np.array(rows, dtype=np.intp)].sum(1))
    return np.concatenate(out)


def _check_tests(tests: Any) -> dict[str, dict]:
    """Built-in names, or user-defined tests, -> name -> test dict (the weat.json layout)."""
    from .. import datasets

    if tests is None:
        return dict(datasets.weat_tests())
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
                                 f"'name' and 'words')")
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
    else:
        words = [value] if isinstance(value, str) else list(value)
        name = key
    if not words or not all(isinstance(w, str) and w.strip() for w in words):
        raise ValueError(f"word set {key!r} must be a non-empty list of non-empty strings, got "
                         f"{words!r}")
    return {"name": name, "words": words}


def _lookup(vectors: Any) -> tuple[dict[str, int], np.ndarray, str]:
    """(word -> row, matrix, description) from ``(words, matrix)`` or a ``{word: vector}``."""
    if vectors is None:
        from .. import datasets

        words, matrix = datasets.word2vec()
        return {w: i for i, w in enumerate(words)}, matrix, "word2vec (Bolukbasi subset)"
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


def weat(vectors: Any = None, *, tests: Any = None, fold_case: bool = True,
         skip_empty: bool = False, n_permutations: int = 100_000, n_bootstrap: int = 1000,
         confidence: float = 0.95, seed: int = 0) -> AssociationResult:
    """Word Embedding Association Tests on word vectors.

    ``vectors``: ``None`` for the word2vec subset (``explain.datasets.word2vec``), a
    ``(words, matrix)`` pair, or a ``{word: vector}`` mapping. ``tests``: names of built-in tests
    (``explain.datasets.weat_tests()``, default all ten), or user-defined tests
    ``{name: {first_target: [...], second_target: [...], first_attribute: [...],
    second_attribute: [...]}}``. A word missing from the vocabulary is looked up lower-cased
    when ``fold_case`` (the Bolukbasi word2vec subset is lower-case; note that a lower-cased
    name can be a common noun, "Bill" -> "bill"); words still missing are listed in
    ``result.missing`` and warned about,
    never dropped silently. A set that is empty after that raises ``ValueError`` unless
    ``skip_empty``, which reports the test with NaN statistics instead.
    """
    index, matrix, description = _lookup(vectors)
    parsed = _check_tests(tests)

    def embed(name, key, words):
        rows, missing = [], []
        for word in words:
            found = index.get(word)
            if found is None and fold_case:
                found = index.get(word.lower())
            (missing if found is None else rows).append(word if found is None else found)
        return np.asarray(matrix[rows], dtype=np.float64) if rows else np.zeros((0, 1)), missing

    return _run(parsed, embed, method="weat", source=description, skip_empty=skip_empty,
                n_permutations=n_permutations, n_bootstrap=n_bootstrap, confidence=confidence,
                seed=seed, loaded=None, extra={"fold_case": fold_case})


def encode_sentences(model: Any, sentences: Sequence[str], *, layer: int = -1,
                     pooling: str = "mean", batch_size: int = 32) -> np.ndarray:
    """Sentence vectors ``(n_sentences, hidden)`` from a Hugging Face text model's hidden states
    (``layer`` indexes ``hidden_states``: 0 = embeddings, -1 = last layer), pooled by
    ``pooling`` (a key of ``POOLINGS``)."""
    from ..hooks import preserved_state

    if pooling not in POOLINGS:
        raise ValueError(f"unknown pooling {pooling!r}; valid: {', '.join(POOLINGS)}")
    if not getattr(model, "is_text", False) or not model.is_huggingface:
        raise TypeError("sentence encodings need a Hugging Face text model loaded with "
                        "explain.load_model (e.g. load_model(datasets.minilm_path()))")
    chunks = []
    with preserved_state(model), torch.no_grad():
        model.model.eval()
        for start in range(0, len(sentences), batch_size):
            batch = model.encode_texts(list(sentences[start:start + batch_size]))
            output = model.model(**batch.model_inputs(), output_hidden_states=True)
            states = output.hidden_states
            if not -len(states) <= layer < len(states):
                raise ValueError(f"layer={layer} is out of range: {model.name} has "
                                 f"{len(states)} hidden states (0 = embeddings .. "
                                 f"{len(states) - 1})")
            hidden = states[layer].double()
            mask = batch.attention_mask.double()
            if pooling == "mean":
                pooled = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
            elif pooling == "first":
                pooled = hidden[:, 0]
            else:
                last = batch.attention_mask.sum(1) - 1
                pooled = hidden[torch.arange(len(hidden)), last]
            chunks.append(pooled.numpy())
    return np.concatenate(chunks)


def seat(model: Any, *, tests: Any = None, templates: Sequence[str] = SEAT_TEMPLATES,
         layer: int = -1, pooling: str = "mean", n_permutations: int = 100_000,
         n_bootstrap: int = 1000, confidence: float = 0.95, seed: int = 0,
         batch_size: int = 32) -> AssociationResult:
    """Sentence Encoder Association Tests: WEAT on pooled sentence embeddings of ``model``.

    Each word of each set is put into every template (``"{}"`` is the placeholder) and every
    sentence is one member of its set. ``tests`` as in ``weat`` (no word is missing for an
    encoder: its tokenizer splits unknown words into pieces). ``layer``/``pooling`` as in
    ``encode_sentences``.
    """
    model = resolve_model(model)
    templates = list(templates)
    if not templates:
        raise ValueError("no templates given; pass e.g. templates=['This is {}.']")
    for template in templates:
        if not isinstance(template, str) or "{}" not in template:
            raise ValueError(f"template {template!r} has no '{{}}' placeholder for the word; "
                             f"write e.g. 'This is {{}}.'")
    parsed = _check_tests(tests)
    all_sentences = sorted({t.replace("{}", w) for test in parsed.values() for key in WORD_SETS
                            for w in test[key]["words"] for t in templates})
    vectors = encode_sentences(model, all_sentences, layer=layer, pooling=pooling,
                               batch_size=batch_size)
    cache = dict(zip(all_sentences, vectors, strict=True))

    def embed(name, key, words):
        return np.stack([cache[t.replace("{}", w)] for w in words for t in templates]), []

    return _run(parsed, embed, method="seat", source=model.name, skip_empty=False,
                n_permutations=n_permutations, n_bootstrap=n_bootstrap, confidence=confidence,
                seed=seed, loaded=model,
                extra={"templates": templates, "layer": layer, "pooling": pooling})


def _run(parsed, embed, *, method, source, skip_empty, n_permutations, n_bootstrap, confidence,
         seed, loaded, extra) -> AssociationResult:
    rows, missing_rows = [], []
    for name, test in parsed.items():
        sets, empty = [], []
        for key in WORD_SETS:
            matrix, missing = embed(name, key, test[key]["words"])
            missing_rows += [{"test": name, "word_set": key, "set_name": test[key]["name"],
                              "word": w} for w in missing]
            if len(missing) == len(test[key]["words"]):
                empty.append(f"{key} ({test[key]['name']})")
            sets.append(matrix)
        finding = test.get("original_finding") or {}
        row = {"test": name, "name": test.get("name", name),
               **{f"{k}_name": test[k]["name"] for k in WORD_SETS},
               **{f"n_{k}": len(m) if not any(k in e for e in empty) else 0
                  for k, m in zip(WORD_SETS, sets, strict=True)},
               "n_missing": sum(r["test"] == name for r in missing_rows),
               "published_effect_size": _number(finding.get("d")),
               "published_p_value": _number(finding.get("p"))}
        if empty:
            message = (f"test {name!r}: no word of {', '.join(empty)} has a vector; a WEAT "
                       f"needs every set non-empty")
            if not skip_empty:
                raise ValueError(message + "; add words to the set, pass other vectors, or "
                                 "skip_empty=True to report the test as not computable")
            rows.append({**row, "effect_size": np.nan, "effect_size_ci_low": np.nan,
                         "effect_size_ci_high": np.nan, "statistic": np.nan, "p_value": np.nan,
                         "p_value_method": "not computable", "n_partitions": 0})
            continue
        stats = association_test(*sets, n_permutations=n_permutations, n_bootstrap=n_bootstrap,
                                 confidence=confidence, seed=seed)
        stats.pop("association")
        rows.append({**row, **stats})
    missing = pd.DataFrame(missing_rows, columns=["test", "word_set", "set_name", "word"])
    if len(missing):
        per_test = missing.groupby("test", sort=False)["word"].apply(list)
        detail = "; ".join(f"{t}: {', '.join(w[:6])}{' ...' if len(w) > 6 else ''}"
                           for t, w in per_test.items())
        warnings.warn(f"{len(missing)} words have no vector and were left out (see "
                      f"result.missing): {detail}", ExplainWarning, stacklevel=3)
    parameters = {"tests": list(parsed), "source": source, "n_permutations": n_permutations,
                  "n_bootstrap": n_bootstrap, "confidence": confidence, **extra}
    return AssociationResult(pd.DataFrame(rows), missing,
                             meta=make_meta(loaded, method=method, parameters=parameters,
                                            seed=seed))


def _number(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


class AssociationResult(TableResult):
    """WEAT/SEAT results.

    ``to_frame()``: one row per test: ``test``, ``name``, ``first_target_name``,
    ``second_target_name``, ``first_attribute_name``, ``second_attribute_name``, ``n_<set>``
    (words or sentences used per set), ``n_missing``, ``published_effect_size``,
    ``published_p_value`` (Caliskan et al.'s finding, NaN when none), ``effect_size``,
    ``statistic``, ``p_value``, ``p_value_method`` (``exact``/``sampled``/``not computable``),
    ``n_partitions``, ``effect_size_ci_low``, ``effect_size_ci_high``.
    ``missing``: one row per word without a vector: ``test``, ``word_set``, ``set_name``,
    ``word``.
    """

    PLOTS: Mapping[str, str] = MappingProxyType({
        "effect_sizes": "effect size per test with its bootstrap interval and the published d",
    })

    def __init__(self, table: pd.DataFrame, missing: pd.DataFrame, *, meta: dict) -> None:
        super().__init__(table, meta=meta)
        self.missing = missing

    def summary(self) -> str:
        return (f"{self.meta['method'].upper()} on {self.meta['parameters']['source']}: "
                f"{len(self.table)} tests, {len(self.missing)} missing words")

    def plot(self, kind: str | None = None, *, ax=None):
        from ..plotting import axes_or_new, style

        self._check_kind(kind)
        table = self.table
        fig, ax = axes_or_new(ax, 7.0, 0.45 * len(table) + 1.6)
        with style():
            y = np.arange(len(table))[::-1]
            values = table["effect_size"].to_numpy(float)
            err = interval_errors(values, table["effect_size_ci_low"],
                                  table["effect_size_ci_high"])
            ax.errorbar(values, y, xerr=err, fmt="o", color="#4C72B0", capsize=3,
                        label=f"{self.meta['method'].upper()} effect size "
                              f"({int(self.meta['parameters']['confidence'] * 100)}% CI)")
            published = table["published_effect_size"].to_numpy(float)
            if np.isfinite(published).any():
                ax.scatter(published, y, marker="x", color="#C44E52", zorder=3,
                           label="published WEAT d (Caliskan et al. 2017, GloVe)")
            labels = []
            for row in table.itertuples():
                mark = "" if np.isnan(row.p_value) else (
                    " *" if row.p_value < 0.05 else "")
                labels.append(f"{row.test}: {row.first_target_name} vs "
                              f"{row.second_target_name}\n/ {row.first_attribute_name} vs "
                              f"{row.second_attribute_name}{mark}")
            ax.set_yticks(y, labels, fontsize=7)
            for i, row in zip(y, table.itertuples(), strict=True):
                if np.isnan(row.effect_size):
                    ax.text(-1.95, i, "not computable (empty word set)", va="center",
                            fontsize=7, color="grey")
            ax.axvline(0, color="black", linewidth=0.8)
            reach = np.nanmax(np.abs(np.r_[values, table["effect_size_ci_low"].to_numpy(float),
                                           table["effect_size_ci_high"].to_numpy(float), 2.0]))
            ax.set_xlim(-reach - 0.1, reach + 0.1)
            ax.set_xlabel("effect size d (standardised difference of mean associations)")
            ax.set_title(f"{self.meta['method'].upper()} on {self.meta['parameters']['source']}"
                         f" (* p < 0.05)")
            ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.5 / (0.45 * len(table) + 1.6)
                                                          - 0.06), ncols=2, frameon=False,
                      fontsize=7)
        return fig
