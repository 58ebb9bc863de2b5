"""The analyses a run can do, one frozen ``RunAnalysis`` each, registered in ``RUN_ANALYSES``.

A spec computes one chunk: ``compute(loaded, frame, config)`` gets the chunk's rows (with the
int64 ``row`` column, the row's position in the whole input) and returns one DataFrame per
table of ``tables``, each with ``row`` first and the same columns and dtypes for every chunk, so
the shards of a table concatenate. A row of the input is computed the same way whatever chunk
it falls in (attribution seeds come from each input's content), so the tables do not depend on
the chunk size beyond float rounding of padded batches.

Built-ins (table -> columns, after ``row``):

* ``predict`` -> ``predictions``: ``predicted_label`` (str), ``predicted_index`` (int64),
  ``predicted_score`` (float64, the predicted class's probability), [``label`` (str)], keep
  columns.
* ``score`` -> ``scores``: ``predicted_label``, ``predicted_index``, ``score_<class>`` (float64,
  each class's probability, in label order), [``label``], keep columns (default keep: every
  column of the input but the text and label columns, so sensitive features reach the audit).
* ``attribute`` -> ``explanations`` (``AttributionResult.explanations()``) and ``units``
  (``AttributionResult.to_frame()`` at its default level), ``input_id`` replaced by ``row``,
  one block per method (column ``method``).
* ``attention`` -> ``heads`` (``layer``, ``head`` and the ``HEAD_STATISTICS`` of the row's text:
  ``AttentionResult.head_statistics()`` of that text alone) and ``rollout`` (``position``,
  ``token``, ``weight``: the rollout row of the first token, the last for a causal LM, over
  tokens).
* ``counterfactual`` -> ``counterfactuals``: ``CounterfactualResult.to_frame()`` of the chunk's
  texts (swaps design) without its own ``row`` and ``unit`` (the input's ``row`` replaces them):
  ``template``, ``group``, ``term``, ``text``, ``is_original``, ``score``, ``predicted_label``;
  two rows per text that holds words of one side of the swap list, none for other texts.

``register_run_analysis(spec)`` adds an analysis from outside the package.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..checks import one_of, positive_int
from .config import RunConfig
from .source import ROW

__all__ = ["RUN_ANALYSES", "RunAnalysis", "check_tables", "modality_of", "register_run_analysis"]


@dataclass(frozen=True)
class RunAnalysis:
    """One analysis of ``explain.run``.

    ``name``: its key in ``RUN_ANALYSES``. ``description``: one line. ``tables``: table name ->
    one-line description (each shard writes one Parquet file per table). ``modalities``: of
    ``"text"``, ``"tabular"``, ``"image"``. ``compute(loaded, frame, config) -> {table:
    DataFrame}``: one chunk (see the module docstring). ``options``: option name -> default
    (``explain.run(..., name=value)``; the defaults are recorded in the config).
    ``check(loaded, config)``: raises for a bad config before any row is computed (optional).
    ``uses_methods``: it takes ``methods`` (attribution methods). ``keeps``: its tables carry
    the ``label`` and ``keep`` columns (else passing them is an error). ``default_keep(columns,
    config)``: the keep columns when none are given (default: none).
    """

    name: str
    description: str
    tables: Mapping[str, str]
    modalities: tuple[str, ...]
    compute: Callable[[Any, pd.DataFrame, RunConfig], dict[str, pd.DataFrame]]
    options: Mapping[str, Any] = field(default_factory=dict)
    check: Callable[[Any, RunConfig], None] | None = None
    uses_methods: bool = False
    keeps: bool = False
    default_keep: Callable[[tuple[str, ...], RunConfig], tuple[str, ...]] | None = None


_ANALYSES: dict[str, RunAnalysis] = {}
#: Name -> ``RunAnalysis`` (read-only; add one with ``register_run_analysis``).
RUN_ANALYSES: Mapping[str, RunAnalysis] = MappingProxyType(_ANALYSES)


def register_run_analysis(spec: RunAnalysis) -> RunAnalysis:
    """Add ``spec`` to ``RUN_ANALYSES`` (a name already there is a ``ValueError``)."""
    if not isinstance(spec, RunAnalysis):
        raise TypeError(f"register_run_analysis takes a RunAnalysis, got {type(spec).__name__}")
    if spec.name in _ANALYSES:
        raise ValueError(f"a run analysis named {spec.name!r} is already registered; pick "
                         f"another name")
    if not spec.tables:
        raise ValueError(f"run analysis {spec.name!r} names no tables")
    _ANALYSES[spec.name] = spec
    return spec


def modality_of(loaded) -> str:
    """``"text"``, ``"tabular"`` or ``"image"``: what a model reads."""
    if loaded.is_text:
        return "text"
    return "image" if loaded.task == "image-classification" else "tabular"


def check_tables(spec: RunAnalysis, tables: Mapping[str, pd.DataFrame]) -> None:
    """``ValueError`` unless ``tables`` are exactly ``spec.tables``, each with int64 ``row``
    first."""
    if set(tables) != set(spec.tables):
        raise ValueError(f"run analysis {spec.name!r} returned the tables {sorted(tables)}, not "
                         f"{sorted(spec.tables)}")
    for name, frame in tables.items():
        if not isinstance(frame, pd.DataFrame) or not len(frame.columns) \
                or frame.columns[0] != ROW or frame[ROW].dtype != np.int64:
            raise ValueError(f"table {name!r} of run analysis {spec.name!r} must be a DataFrame "
                             f"whose first column is {ROW!r} (int64)")


# ----------------------------------------------------------------- shared pieces


def _texts(frame: pd.DataFrame, config: RunConfig) -> list[str]:
    from ..text import read_texts

    return read_texts(frame, config.text_column)


def _extras(frame: pd.DataFrame, config: RunConfig) -> dict[str, Any]:
    """The label (as str) and keep columns of a chunk, in that order."""
    extras: dict[str, Any] = {}
    if config.label is not None:
        extras["label"] = frame[config.label].astype(str).to_numpy()
    for column in config.keep:
        extras[column] = frame[column].to_numpy()
    return extras


def _probabilities(loaded, frame: pd.DataFrame, config: RunConfig) -> np.ndarray:
    """``(rows, classes)`` float64 softmax probabilities, in batches of ``batch_size``."""
    from ..hooks import preserved_state

    batch_size = config.options["batch_size"]
    texts = _texts(frame, config) if loaded.is_text else None
    chunks = []
    with preserved_state(loaded), torch.inference_mode():
        loaded.model.eval()
        for start in range(0, len(frame), batch_size):
            if texts is not None:
                batch = loaded.encode_texts(texts[start:start + batch_size],
                                            max_length=config.options["max_length"])
                output = loaded.model(**loaded.to_device(batch.model_inputs()))
            else:
                rows = loaded.encode_frame(frame.iloc[start:start + batch_size])
                output = loaded.model(loaded.to_device(rows))
            logits = getattr(output, "logits", output)
            chunks.append(torch.softmax(logits.double(), dim=-1).cpu().numpy())
    n_classes = len(loaded.label_names or ()) or 2
    return np.concatenate(chunks) if chunks else np.zeros((0, n_classes))


def _predicted(loaded, frame: pd.DataFrame, config: RunConfig) -> tuple[dict, np.ndarray]:
    probabilities = _probabilities(loaded, frame, config)
    names = list(loaded.label_names or map(str, range(probabilities.shape[1])))
    index = probabilities.argmax(axis=1).astype(np.int64)
    columns = {ROW: frame[ROW].to_numpy(np.int64),
               "predicted_label": pd.array([names[i] for i in index], dtype="str"),
               "predicted_index": index}
    return columns, probabilities


def _check_classifier(loaded, config: RunConfig) -> None:
    if loaded.task not in ("sequence-classification", "tabular-classification"):
        raise ValueError(f"explain run {config.analysis} applies to classifiers "
                         f"(sequence-classification, tabular-classification); {loaded.name!r} "
                         f"is a {loaded.task!r} model")
    positive_int(config.options["batch_size"], "batch_size", fix="pass e.g. batch_size=32")
    if config.options["max_length"] is not None:
        positive_int(config.options["max_length"], "max_length", fix="pass e.g. max_length=128")


# ----------------------------------------------------------------- predict, score


def _predict(loaded, frame: pd.DataFrame, config: RunConfig) -> dict[str, pd.DataFrame]:
    columns, probabilities = _predicted(loaded, frame, config)
    columns["predicted_score"] = (probabilities.max(axis=1) if len(probabilities)
                                  else np.zeros(0))
    return {"predictions": pd.DataFrame({**columns, **_extras(frame, config)})}


def _score(loaded, frame: pd.DataFrame, config: RunConfig) -> dict[str, pd.DataFrame]:
    columns, probabilities = _predicted(loaded, frame, config)
    names = list(loaded.label_names or map(str, range(probabilities.shape[1])))
    for i, name in enumerate(names):
        columns[f"score_{name}"] = probabilities[:, i]
    return {"scores": pd.DataFrame({**columns, **_extras(frame, config)})}


def _keep_inputs(columns: tuple[str, ...], config: RunConfig) -> tuple[str, ...]:
    return tuple(c for c in columns if c not in (config.text_column, config.label))


_CLASSIFIER_OPTIONS = MappingProxyType({"batch_size": 32, "max_length": None})

# ----------------------------------------------------------------- attribute


def _attribute(loaded, frame: pd.DataFrame, config: RunConfig) -> dict[str, pd.DataFrame]:
    from ..attribution import METHODS, attribute

    inputs = _texts(frame, config) if loaded.is_text else frame.drop(columns=[ROW])
    rows = frame[ROW].to_numpy(np.int64)
    options = dict(config.options)
    explanations, units = [], []
    for method in config.methods:
        # n_steps="auto" is for the integrating methods; the others keep their default
        mine = {k: v for k, v in options.items() if k != "n_steps"} \
            if options["n_steps"] == "auto" and not METHODS[method].integrates else options
        result = attribute(loaded, inputs, method=method, seed=config.seed, progress=False,
                           **mine)
        for table, found in ((explanations, result.explanations()), (units, result.to_frame())):
            found.insert(0, ROW, rows[found.pop("input_id").to_numpy(np.int64)])
            table.append(found)
    return {"explanations": _typed(pd.concat(explanations, ignore_index=True)),
            "units": _typed(pd.concat(units, ignore_index=True))}


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    """Object columns as ``str`` (None stays missing), so every shard has the same schema."""
    for column in frame.columns:
        if frame[column].dtype == object:
            frame[column] = frame[column].astype("str")
    return frame


def _check_attribute(loaded, config: RunConfig) -> None:
    from ..attribution import FAITHFULNESS_DEFINITIONS, METHODS, applicable_methods

    if not config.methods:
        raise ValueError("explain run attribute needs at least one method (--method M); valid: "
                         f"{', '.join(applicable_methods(loaded.task))}")
    for method in config.methods:
        one_of(method, applicable_methods(loaded.task), f"attribution method for {loaded.task}")
    n_steps = config.options["n_steps"]
    if n_steps != "auto":
        positive_int(n_steps, "n_steps", fix="pass an integer, e.g. 50, or 'auto'")
    elif not any(METHODS[m].integrates for m in config.methods):
        raise ValueError(f"n_steps='auto' (--n-steps auto) applies to the integrating methods "
                         f"(integrated_gradients); {', '.join(config.methods)} take no "
                         f"integration steps: drop it, or add --method integrated_gradients")
    faithfulness = config.options["faithfulness"]
    if faithfulness is not False:
        one_of(faithfulness, FAITHFULNESS_DEFINITIONS, "faithfulness definition (or False)")
    for name in ("batch_size", "max_length"):
        if config.options[name] is not None:
            positive_int(config.options[name], name, fix=f"pass a positive {name} or None")


# ----------------------------------------------------------------- attention


def _attention(loaded, frame: pd.DataFrame, config: RunConfig) -> dict[str, pd.DataFrame]:
    from ..attention import HEAD_STATISTICS, attention
    from ..attention.graph import head_statistics

    texts = _texts(frame, config)
    result = attention(loaded, texts, max_length=config.options["max_length"],
                       batch_size=config.options["batch_size"])
    _, keys = result.sides("self")
    layers, heads = np.meshgrid(result.layers, result.heads, indexing="ij")
    head_parts, rollout_parts = [], []
    for i, row in enumerate(frame[ROW].to_numpy(np.int64)):
        stats = head_statistics(result.maps["self"][i], keys.special[i])
        part = {ROW: np.full(layers.size, row, dtype=np.int64),
                "layer": layers.ravel().astype(np.int64), "head": heads.ravel().astype(np.int64)}
        part.update({key: stats[key].ravel().astype(np.float64) for key in HEAD_STATISTICS})
        head_parts.append(pd.DataFrame(part))
        weights = result.rollout(i, level="token")
        tokens = result.tokens(i)
        rollout_parts.append(pd.DataFrame({
            ROW: np.full(len(tokens), row, dtype=np.int64),
            "position": np.arange(len(tokens), dtype=np.int64),
            "token": pd.array(tokens, dtype="str"), "weight": np.asarray(weights, np.float64)}))
    return {"heads": pd.concat(head_parts, ignore_index=True),
            "rollout": pd.concat(rollout_parts, ignore_index=True)}


def _check_attention(loaded, config: RunConfig) -> None:
    positive_int(config.options["batch_size"], "batch_size", fix="pass e.g. batch_size=16")
    if config.options["max_length"] is not None:
        positive_int(config.options["max_length"], "max_length", fix="pass e.g. max_length=128")


# ----------------------------------------------------------------- counterfactual

_COUNTERFACTUAL_COLUMNS = {"template": "str", "group": "str", "term": "str", "text": "str",
                           "is_original": "bool", "score": "float64", "predicted_label": "str"}


def _swap_pairs(swaps) -> list:
    from ..fairness.terms import identity_terms

    if isinstance(swaps, str):
        return identity_terms()["swaps"][swaps]["pairs"]
    return [list(pair) for pair in swaps]


def _one_sided(made: list[tuple[str, str]], pairs) -> bool:
    """Whether swaps ``made`` in a text change words of one side of ``pairs`` only: the texts
    ``explain.counterfactual`` keeps (it refuses a chunk with none)."""
    firsts = {a.lower() for a, _ in pairs}
    seconds = {b.lower() for _, b in pairs}
    sides = {old.lower() in firsts for old, _ in made
             if (old.lower() in firsts) != (old.lower() in seconds)}
    return len(sides) == 1


def _counterfactual(loaded, frame: pd.DataFrame, config: RunConfig) -> dict[str, pd.DataFrame]:
    from ..fairness import counterfactual
    from ..fairness.terms import swap_terms

    texts = _texts(frame, config)
    options = config.options
    pairs = _swap_pairs(options["swaps"])
    if any(_one_sided(swap_terms(text, pairs)[1], pairs) for text in texts):
        with warnings.catch_warnings():
            # texts without a word of the swap list get no rows; that is the table's definition
            warnings.filterwarnings("ignore", message=".*contain no word of the swap list")
            result = counterfactual(loaded, texts, swaps=options["swaps"],
                                    target=options["target"], batch_size=options["batch_size"])
        found = result.to_frame()
        rows = frame[ROW].to_numpy(np.int64)[found.pop("unit").to_numpy(np.int64)]
        found = found.drop(columns=["row"])
    else:
        found, rows = pd.DataFrame({c: [] for c in _COUNTERFACTUAL_COLUMNS}), np.zeros(0, np.int64)
    table = pd.DataFrame({ROW: rows})
    for column, dtype in _COUNTERFACTUAL_COLUMNS.items():
        table[column] = found[column].to_numpy() if column in found else pd.NA
        table[column] = table[column].astype(dtype)
    return {"counterfactuals": table}


def _check_counterfactual(loaded, config: RunConfig) -> None:
    from ..fairness.terms import identity_terms

    if loaded.task != "sequence-classification":
        raise ValueError(f"explain run counterfactual probes text classifiers; {loaded.name!r} "
                         f"is a {loaded.task!r} model")
    swaps = config.options["swaps"]
    if isinstance(swaps, str):
        one_of(swaps, identity_terms()["swaps"], "swap list")
    positive_int(config.options["batch_size"], "batch_size", fix="pass e.g. batch_size=32")


# ----------------------------------------------------------------- the built-ins

for _spec in (
    RunAnalysis("predict", "the predicted class and its probability per row",
                {"predictions": "one row per input row: predicted label, index and probability"},
                ("text", "tabular"), _predict, options=_CLASSIFIER_OPTIONS,
                check=_check_classifier, keeps=True),
    RunAnalysis("score", "every class's probability per row (the input of an audit)",
                {"scores": "one row per input row: predicted label and one probability per "
                           "class, with the input's other columns"},
                ("text", "tabular"), _score, options=_CLASSIFIER_OPTIONS,
                check=_check_classifier, keeps=True, default_keep=_keep_inputs),
    RunAnalysis("attribute", "attribution scores and trust numbers per row (explain.attribute)",
                {"explanations": "one row per explanation: prediction, trust numbers, summary",
                 "units": "one row per word or feature of each explanation: its score"},
                ("text", "tabular"), _attribute,
                options=MappingProxyType({"n_steps": 50, "faithfulness": "aopc", "target": None,
                                          "batch_size": None, "max_length": None}),
                check=_check_attribute, uses_methods=True),
    RunAnalysis("attention", "per-head attention statistics and the rollout of the first token",
                {"heads": "one row per text, layer and head: the head statistics",
                 "rollout": "one row per text and token: the rollout of the first token"},
                ("text",), _attention,
                options=MappingProxyType({"batch_size": 16, "max_length": None}),
                check=_check_attention),
    RunAnalysis("counterfactual", "identity-term swaps per text (explain.counterfactual)",
                {"counterfactuals": "two rows per text with identity words: the original and "
                                    "the swapped version, each scored"},
                ("text",), _counterfactual,
                options=MappingProxyType({"swaps": "gender", "target": None, "batch_size": 32}),
                check=_check_counterfactual),
):
    register_run_analysis(_spec)
