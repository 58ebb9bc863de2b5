"""Loading models: one function, ``load_model``, and one object, ``LoadedModel``.

``load_model`` accepts

* a Hugging Face ``save_pretrained`` directory (``config.json`` + ``*.safetensors``);
* an ``explain`` checkpoint directory (``config.json`` naming an ``explain_architecture`` from
  ``explain.nets.ARCHITECTURES`` + ``model.safetensors``), used for tabular and image models;
* a Hugging Face Hub id such as ``"bert-base-uncased"`` (real Hub code; offline it fails with a
  message that says how to pass a local directory instead);
* an in-memory ``torch.nn.Module`` with its tokenizer, feature names (and one-hot feature
  groups) or input shape;
* a fitted scikit-learn classifier (anything with ``predict_proba``: ``LogisticRegression``, a
  random forest, a ``Pipeline``) on numeric features, as a ``"tabular-classification"`` model
  of family ``"sklearn"`` (``explain._sklearn``: called, never differentiated).

Weights are read from safetensors only unless ``allow_pickle=True``; remote code never runs; the
model is put in eval mode and, with ``device=``, on that device (scikit-learn models: the CPU
only); Hugging Face models are loaded with eager attention so attention weights exist, and a
model that arrives with another implementation is switched with a warning, never silently. A text model gets a tokenizer that fits it or an error: a checkpoint directory
without tokenizer files, or a tokenizer with far fewer tokens than the model's embedding rows
(every word would read as an unknown token), is refused with the fix (``tokenizer=...``).
"""

from __future__ import annotations

import itertools
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import torch
from torch import nn

from . import _hf, _sklearn, nets
from .checks import available_device, check_columns, check_feature_groups, one_of, read_json_file
from .families import Family, family_of
from .provenance import sha256_files, sha256_state_dict
from .staging import staged_directory

__all__ = ["TASKS", "LoadedModel", "as_loaded", "load_model", "save_model"]

TASKS: Mapping[str, str] = MappingProxyType({
    "sequence-classification": "text (or text pair) -> class logits",
    "masked-lm": "text with a mask token -> vocabulary logits at every position",
    "causal-lm": "text -> next-token vocabulary logits at every position",
    "seq2seq-lm": "source text -> target-token vocabulary logits at every decoder position "
                  "(an encoder-decoder)",
    "encoder": "text -> hidden states (no head)",
    "tabular-classification": "feature vector -> class logits",
    "image-classification": "image tensor (C, H, W) -> class logits",
})

_TEXT_TASKS = _hf.TEXT_TASKS
_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*(/[\w.\-]+)?$")


@dataclass(repr=False)
class LoadedModel:
    """A model with everything an analysis needs to read its inputs and outputs.

    ``model``: the ``torch.nn.Module`` in eval mode. ``task``: a key of ``TASKS``.
    ``tokenizer``: a fast Hugging Face tokenizer for text tasks, else ``None``.
    ``feature_names``: encoded feature names of a tabular model; ``feature_groups`` maps a raw
    column (or the group name given to ``load_model``) to the indices of its encoded features
    (one-hot groups); ``encoder`` turns a raw ``pandas.DataFrame`` into the model's float matrix
    (without one, ``encode_frame`` reads the ``feature_names`` columns). ``input_shape``:
    ``(C, H, W)`` of an image model. ``label_names``: class names by index (``None`` for LMs and
    encoders).
    ``provenance``: name, source, revision, weights hash, attention implementation, class.
    ``card``: the model card (data, split, seed, metrics, training time) when the checkpoint has
    one. ``family``: the ``explain.families.Family`` that describes the architecture (embedding,
    blocks, attention modules, layer and head counts), resolved once from the model when not
    given; a text model whose family finds no token embedding is refused.
    """

    model: nn.Module
    task: str
    tokenizer: Any = None
    feature_names: tuple[str, ...] | None = None
    feature_groups: dict[str, list[int]] | None = None
    encoder: nets.TabularEncoder | None = None
    input_shape: tuple[int, ...] | None = None
    label_names: tuple[str, ...] | None = None
    provenance: dict[str, Any] = field(default_factory=dict)
    card: dict[str, Any] = field(default_factory=dict)
    family: Family | None = None

    @property
    def device(self) -> torch.device:
        """The device of the model's first parameter (or buffer); the CPU when it has none."""
        for tensor in itertools.chain(self.model.parameters(), self.model.buffers()):
            return tensor.device
        return torch.device("cpu")

    def to_device(self, value: Any) -> Any:
        """``value`` (a tensor, or a dict, tuple or list of them) on the model's ``device``."""
        if isinstance(value, torch.Tensor):
            return value.to(self.device)
        if isinstance(value, Mapping):
            return {key: self.to_device(item) for key, item in value.items()}
        if isinstance(value, (tuple, list)):
            return type(value)(self.to_device(item) for item in value)
        return value

    def __post_init__(self) -> None:
        if self.family is None:
            self.family = family_of(self.model)
        if self.is_text and self.family.embedding_name(self.model) is None:
            raise ValueError(
                f"{type(self.model).__name__} is loaded as a {self.task!r} model but its family "
                f"{self.family.name!r} ({self.family.description}) finds no token embedding "
                f"(nn.Embedding) to read text through. Give it one, or describe its layout: "
                f"explain.families.register_family(Family(name='my-net', description='...', "
                f"matches=..., embedding_name=lambda model: '<dotted name of the embedding>', "
                f"...))")

    @property
    def name(self) -> str:
        return str(self.provenance.get("name", type(self.model).__name__))

    @property
    def is_text(self) -> bool:
        return self.task in _TEXT_TASKS

    @property
    def is_huggingface(self) -> bool:
        from transformers import PreTrainedModel

        return isinstance(self.model, PreTrainedModel)

    @property
    def config(self) -> Any:
        return getattr(self.model, "config", None)

    def label_index(self, label: int | str) -> int:
        """Index of a class given by name or index; ``ValueError`` lists the valid labels."""
        names = self.label_names or ()
        if isinstance(label, bool) or not isinstance(label, (int, str)):
            raise TypeError(f"a label is a class name or index, got {label!r}")
        if isinstance(label, int):
            if names and not 0 <= label < len(names):
                raise ValueError(f"label index {label} is out of range; valid: 0..{len(names) - 1} "
                                 f"({', '.join(names)})")
            return label
        if label not in names:
            raise ValueError(f"unknown label {label!r}; valid labels: {', '.join(map(repr, names))}")
        return names.index(label)

    def encode_texts(self, texts, *, text_pairs=None, max_length=None):
        """Tokenise texts for this model (CPU tensors: ``to_device`` them for the model); see
        ``explain.text.encode_texts``."""
        from .text import encode_texts

        if self.tokenizer is None:
            raise TypeError(f"{self.name} has no tokenizer (task {self.task!r}); text analyses "
                            f"need load_model(..., tokenizer=...)")
        return encode_texts(self.tokenizer, texts, text_pairs=text_pairs, max_length=max_length,
                            max_positions=self.family.max_positions(self.model))

    def encode_frame(self, frame) -> torch.Tensor:
        """Table -> ``(N, n_features)`` float32 CPU tensor: through the model's ``encoder`` when it
        has one (unseen categories, missing values and non-numbers raise, as in
        ``TabularEncoder.transform``), else the columns named by ``feature_names``, in that
        order, read as numbers (``KeyError`` names missing columns; ``ValueError`` names a
        column that holds text, NaN or infinity, and its rows)."""
        if self.encoder is not None:
            return torch.from_numpy(self.encoder.transform(frame))
        if not self.feature_names:
            raise TypeError(f"{self.name} has no tabular encoder and no feature names; pass "
                            f"encoded features directly, or load it with "
                            f"load_model(module, feature_names=[...])")
        names = check_columns(frame, {"feature": list(self.feature_names)}, where="the data")
        columns = [nets._numeric_values(frame, name) for name in names]
        return torch.from_numpy(np.stack(columns, axis=1).astype(np.float32))

    def __repr__(self) -> str:  # one line, not the module's repr (kilobytes)
        labels = list(self.label_names) if self.label_names else None
        shown = labels if labels is None or len(labels) <= 6 else [*labels[:6], "..."]
        n = sum(p.numel() for p in self.model.parameters())
        return (f"LoadedModel(name={self.name!r}, task={self.task!r}, family="
                f"{getattr(self.family, 'name', None)!r}, labels={shown}, parameters={n:,}, "
                f"device='{self.device}')")

    def _repr_html_(self) -> str:
        from html import escape

        rows = "".join(f"<tr><th>{escape(str(k))}</th><td>{escape(str(v))}</td></tr>"
                       for k, v in self.provenance.items())
        return f"<table class='explain-model'><caption>LoadedModel</caption>{rows}</table>"


def _looks_like_path(source: str) -> bool:
    return (source.startswith((".", "/", "~")) or os.sep in source.strip("/").replace("/", "", 1)
            or not _HUB_ID.match(source))


def _weights_files(directory: Path) -> tuple[list[Path], list[Path]]:
    safe = sorted(directory.glob("*.safetensors"))
    pickled = sorted(p for p in directory.iterdir() if p.suffix in _PICKLE_SUFFIXES)
    return safe, pickled


def load_model(
    source: str | os.PathLike | nn.Module | Any,
    /,
    *,
    task: str | None = None,
    tokenizer: Any = None,
    feature_names: Sequence[str] | None = None,
    feature_groups: Mapping[str, Sequence[str]] | Sequence[Sequence[str]] | None = None,
    label_names: Sequence[str] | None = None,
    input_shape: Sequence[int] | None = None,
    revision: str | None = None,
    allow_pickle: bool = False,
    attn_implementation: str | None = "eager",
    name: str | None = None,
    device: str | torch.device | None = None,
) -> LoadedModel:
    """Load a model for analysis.

    ``source``: a checkpoint directory, a Hub id, an ``nn.Module`` or a fitted scikit-learn
    classifier. ``task``: a key of
    ``TASKS``; inferred from the checkpoint's architecture when omitted (a bare encoder loads as
    ``"encoder"``; pass ``task="sequence-classification"`` and ``label_names`` to put a fresh
    head on it). ``allow_pickle``: also read ``pytorch_model.bin``-style pickle weights (pickle
    can run code: only for sources you trust). ``attn_implementation``: ``"eager"`` (default) so
    attention weights exist; ``None`` keeps what the model has. ``device``: where the model
    runs (``"cuda"``, ``torch.device("cuda:1")``, ...), moved there once loaded; ``None`` leaves
    it where it is (a checkpoint: the CPU); one this machine lacks is a ``ValueError``.

    ``feature_names`` (in-memory tabular module): the name of each input column, in order.
    ``feature_groups``: its one-hot groups, attributed as one feature each: a mapping group
    name -> member feature names (``{"sex": ["sex=F", "sex=M"]}``), or a list of member lists
    named by their shared ``column=`` prefix (``[["sex=F", "sex=M"]]``). Stored as
    ``LoadedModel.feature_groups`` (group name -> feature indices).

    A scikit-learn classifier reads ``feature_names`` (default: its ``feature_names_in_``, when
    it was fitted on a DataFrame) and ``feature_groups`` the same way; ``label_names`` default
    to its ``classes_``. Its model is an ``explain._sklearn.SklearnClassifier`` whose forward
    returns ``log(predict_proba)``: the perturbation attributions, audits and surrogates apply;
    gradient and layer methods, ``output="logit"`` and representation probes say why not.
    It runs on the CPU (``device=`` other than the CPU is refused).
    """
    if task is not None:
        one_of(task, TASKS, "task")
    device = available_device(device)
    estimator = _sklearn.is_estimator(source)
    if feature_groups is not None and not (estimator or isinstance(source, nn.Module)):
        raise ValueError("feature_groups= is for an in-memory torch.nn.Module or scikit-learn "
                         "classifier; a checkpoint directory or Hub model brings its own (drop "
                         "feature_groups=)")
    if estimator:
        if task not in (None, "tabular-classification"):
            raise ValueError(f"a scikit-learn classifier loads as task "
                             f"'tabular-classification', not {task!r} (drop task=)")
        if device is not None and device.type != "cpu":
            raise ValueError(f"a scikit-learn classifier runs on the CPU, not {str(device)!r}; drop device=")
        parts = _sklearn.wrap(source, feature_names=feature_names, label_names=label_names,
                              name=name)
        return LoadedModel(**parts, task="tabular-classification",
                           feature_groups=check_feature_groups(feature_groups,
                                                               parts["feature_names"]))
    if isinstance(source, nn.Module):
        return _on(device, _from_module(
            source, task=task, tokenizer=tokenizer, feature_names=feature_names,
            feature_groups=feature_groups, label_names=label_names, input_shape=input_shape,
            attn_implementation=attn_implementation, name=name))
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(f"load_model takes a directory, a Hub id, a torch.nn.Module or a "
                        f"fitted scikit-learn classifier (with predict_proba), got "
                        f"{type(source).__name__}")
    text = os.fspath(source)
    path = Path(text).expanduser()
    if path.exists():
        return _on(device, _from_directory(
            path, task=task, tokenizer=tokenizer, label_names=label_names,
            allow_pickle=allow_pickle, attn_implementation=attn_implementation, name=name))
    if _looks_like_path(text):
        raise FileNotFoundError(f"no such checkpoint directory: {text!r}; pass an existing "
                                f"save_pretrained directory or a Hub id like 'org/model'")
    return _on(device, _from_hub(
        text, task=task, tokenizer=tokenizer, label_names=label_names, revision=revision,
        allow_pickle=allow_pickle, attn_implementation=attn_implementation, name=name))


def _on(device: torch.device | None, loaded: LoadedModel) -> LoadedModel:
    return loaded if device is None else replace(loaded, model=loaded.model.to(device))


def _from_directory(path: Path, *, task, tokenizer, label_names, allow_pickle,
                    attn_implementation, name) -> LoadedModel:
    if not path.is_dir():
        raise NotADirectoryError(f"{str(path)!r} is a file; pass the checkpoint directory that "
                                 f"holds config.json and model.safetensors")
    config_file = path / "config.json"
    if not config_file.is_file():
        raise ValueError(f"{str(path)!r} is not a checkpoint: it has no config.json. Pass a "
                         f"directory written by save_pretrained() or explain.save_model()")
    config = read_json_file(config_file, "the checkpoint's config")
    if "auto_map" in config:
        raise ValueError(f"{str(path)!r} needs custom model code (auto_map in config.json); "
                         f"explain never runs remote or custom code")
    safe, pickled = _weights_files(path)
    if not safe:
        if pickled and not allow_pickle:
            raise ValueError(
                f"{str(path)!r} holds only pickle weights ({', '.join(p.name for p in pickled)}); "
                f"unpickling can run arbitrary code, so explain loads safetensors only. Convert "
                f"the checkpoint (model.save_pretrained(dir, safe_serialization=True)) or, if you "
                f"trust its source, pass allow_pickle=True")
        if not pickled:
            raise ValueError(f"{str(path)!r} has config.json but no weights (*.safetensors)")
    card = {}
    card_file = path / "model_card.json"
    if card_file.is_file():
        card = read_json_file(card_file, "the model card")
    weights = safe or pickled
    provenance = {
        "name": name or card.get("name") or path.name,
        "source": str(path.resolve()),
        "revision": None,
        "weights_sha256": sha256_files(weights, root=path),
        "weights_format": "safetensors" if safe else "pickle",
    }
    if "explain_architecture" in config:
        return _native_from_directory(path, config, card, provenance, task, label_names,
                                      tokenizer)

    parts = _hf.load(str(path), task=task, tokenizer=tokenizer, label_names=label_names,
                     revision=None, allow_pickle=allow_pickle,
                     attn_implementation=attn_implementation, local=True)
    parts["provenance"] = {**provenance, **parts["provenance"], "name": provenance["name"],
                           "revision": None}
    return LoadedModel(**parts, card=card)


def _native_from_directory(path, config, card, provenance, task, label_names,
                           tokenizer) -> LoadedModel:
    from safetensors.torch import load_file

    model = nets.build(config["explain_architecture"], config.get("architecture_config", {}))
    try:
        model.load_state_dict(load_file(str(path / "model.safetensors")), strict=True)
    except Exception as error:  # safetensors' own error type, or torch's RuntimeError
        raise _hf.weights_error(path / "model.safetensors", error) from None
    model.eval()
    saved_task = config.get("task")
    if task is not None and saved_task is not None and task != saved_task:
        raise ValueError(f"{str(path)!r} is a {saved_task!r} checkpoint, not {task!r}")
    encoder = nets.TabularEncoder.from_dict(config["encoder"]) if config.get("encoder") else None
    features = config.get("feature_names")
    task = saved_task or task or "tabular-classification"
    family = family_of(model)
    if task in _TEXT_TASKS:
        if tokenizer is None:
            from transformers import AutoTokenizer

            _hf.check_tokenizer_files(path)
            tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        _hf.prepare_tokenizer(tokenizer)
        _hf.check_vocabulary(tokenizer, model, family, path)
    return LoadedModel(
        model=model, task=task, tokenizer=tokenizer, family=family,
        feature_names=tuple(features) if features else None,
        feature_groups={k: list(v) for k, v in config["feature_groups"].items()}
        if config.get("feature_groups") else None,
        encoder=encoder,
        input_shape=tuple(config["input_shape"]) if config.get("input_shape") else None,
        label_names=tuple(label_names or config.get("label_names") or ()) or None,
        provenance={**provenance, "class": type(model).__name__,
                    "architecture": config["explain_architecture"], "attn_implementation": None,
                    "n_parameters": sum(p.numel() for p in model.parameters())},
        card=card,
    )


def _from_hub(hub_id, *, task, tokenizer, label_names, revision, allow_pickle,
              attn_implementation, name) -> LoadedModel:
    parts = _hf.load(hub_id, task=task, tokenizer=tokenizer, label_names=label_names,
                     revision=revision, allow_pickle=allow_pickle,
                     attn_implementation=attn_implementation, local=False)
    parts["provenance"].update(name=name or hub_id, source=f"hub:{hub_id}")
    return LoadedModel(**parts)


def _from_module(module, *, task, tokenizer, feature_names, feature_groups, label_names,
                 input_shape, attn_implementation, name) -> LoadedModel:
    from transformers import PreTrainedModel

    if task is None:
        if isinstance(module, PreTrainedModel):
            task = _hf.task_from_architectures([type(module).__name__])
        elif feature_names is not None:
            task = "tabular-classification"
        elif input_shape is not None:
            task = "image-classification"
        elif tokenizer is not None:
            task = "sequence-classification"
        else:
            raise ValueError(f"cannot tell what {type(module).__name__} computes; pass task= "
                             f"one of {', '.join(TASKS)} (and its tokenizer, feature_names or "
                             f"input_shape)")
    if task in _TEXT_TASKS and tokenizer is None:
        raise ValueError(f"a {task!r} model needs its tokenizer: load_model(model, "
                         f"tokenizer=AutoTokenizer.from_pretrained(...))")
    if task == "tabular-classification" and feature_names is None:
        raise ValueError("a tabular model needs feature_names=[...] (one per input column)")
    groups = check_feature_groups(feature_groups, feature_names)
    if task == "image-classification" and input_shape is None:
        raise ValueError("an image model needs input_shape=(channels, height, width)")
    implementation = None
    if isinstance(module, PreTrainedModel):
        implementation = _hf.ensure_eager(module, attn_implementation, stacklevel=4)
        if label_names is None and task == "sequence-classification":
            label_names = _hf.label_names_from_config(module.config, None)
    _hf.prepare_tokenizer(tokenizer)
    family = family_of(module)
    if tokenizer is not None:
        _hf.check_vocabulary(tokenizer, module, family, name or type(module).__name__)
    module.eval()
    return LoadedModel(
        model=module, task=task, tokenizer=tokenizer, family=family,
        feature_names=tuple(feature_names) if feature_names is not None else None,
        feature_groups=groups,
        input_shape=tuple(input_shape) if input_shape is not None else None,
        label_names=tuple(label_names) if label_names is not None else None,
        provenance={"name": name or type(module).__name__, "source": "in-memory",
                    "revision": None, "weights_sha256": sha256_state_dict(module),
                    "class": type(module).__name__, "attn_implementation": implementation,
                    "n_parameters": sum(p.numel() for p in module.parameters())},
    )


def save_model(loaded: LoadedModel, directory: str | os.PathLike, *,
               card: Mapping[str, Any] | None = None, overwrite: bool = False) -> Path:
    """Write ``loaded`` as a checkpoint that ``load_model`` reads back (safetensors, no pickle).

    Hugging Face models use ``save_pretrained`` (+ tokenizer); ``explain.nets`` models write
    ``config.json`` + ``model.safetensors`` (+ the tokenizer files of a text model). ``card`` is
    stored as ``model_card.json``. The directory is written through ``explain.staging`` (a
    crash never leaves a half-written checkpoint; ``overwrite`` replaces only a checkpoint
    explain wrote). Returns the directory.
    """
    target = Path(directory)
    with staged_directory(target, overwrite=overwrite, what="model checkpoint") as tmp:
        arch = nets.architecture_name(loaded.model)
        if loaded.is_huggingface:
            loaded.model.save_pretrained(tmp)
            if loaded.tokenizer is not None:
                loaded.tokenizer.save_pretrained(tmp)
        elif arch is not None:
            from safetensors.torch import save_file

            state = {k: v.detach().cpu().contiguous() for k, v in loaded.model.state_dict().items()}
            save_file(state, str(tmp / "model.safetensors"))
            config = {"explain_architecture": arch, "architecture_config": loaded.model.config,
                      "task": loaded.task, "label_names": list(loaded.label_names or []),
                      "feature_names": list(loaded.feature_names or []) or None,
                      "feature_groups": loaded.feature_groups,
                      "encoder": loaded.encoder.to_dict() if loaded.encoder else None,
                      "input_shape": list(loaded.input_shape) if loaded.input_shape else None}
            # No sort_keys: the encoder's column order is the model's input order.
            (tmp / "config.json").write_text(json.dumps(config, indent=2))
            if loaded.tokenizer is not None:
                loaded.tokenizer.save_pretrained(tmp)
        else:
            raise TypeError(f"cannot save {type(loaded.model).__name__}: only Hugging Face "
                            f"models and explain.nets architectures ({', '.join(nets.ARCHITECTURES)}) "
                            f"have a pickle-free format")
        if card is not None:
            (tmp / "model_card.json").write_text(json.dumps(dict(card), indent=2, sort_keys=True))
    return target


def as_loaded(model: Any, *, analysis: str) -> LoadedModel:
    """The model an analysis runs on: a ``LoadedModel`` as it is, anything else through
    ``load_model`` (a checkpoint directory, a Hub id ``"org/name"``, an ``nn.Module``).

    A bare name that is not a directory (``"compas"``, ``"sentiment"``) is refused with how to
    load it: reference models are built by their recipes, which the library never imports (the
    command line resolves their names). ``analysis`` names the caller in the message.
    """
    if isinstance(model, LoadedModel):
        return model
    if (isinstance(model, str) and re.fullmatch(r"[\w.-]+", model)
            and not Path(model).expanduser().exists()):
        raise ValueError(
            f"{analysis} takes a LoadedModel; {model!r} is not a checkpoint directory. Load the "
            f"model first: explain.load_model(path) for a checkpoint directory; for a reference "
            f"model explain.load_model(explain_models.ensure({model!r})) (the recipes; on the "
            f"command line, explain models {model} builds it and prints its directory)")
    return load_model(model)

