"""The Hugging Face side of loading: checkpoints (a directory or a Hub id), tasks from their
architectures, eager attention, and the checks every text model's tokenizer passes.

``explain.loading`` builds the ``LoadedModel``; this module only talks to ``transformers``.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch import nn

from .errors import ExplainWarning
from .families import Family, family_of

#: The tasks of a Hugging Face checkpoint: all of them read text.
TEXT_TASKS = ("sequence-classification", "masked-lm", "causal-lm", "seq2seq-lm", "encoder")
#: Files that hold a tokenizer's vocabulary (fast, WordPiece, BPE, SentencePiece, tiktoken);
#: a checkpoint directory with none of them has no tokenizer.
_TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "*.model", "*.spm", "*.tiktoken")
#: A tokenizer with fewer tokens than this share of the model's embedding rows is not the
#: model's (checkpoints pad their embeddings by a few percent at most; a tokenizer built without
#: its files has a handful of special tokens).
_MIN_VOCABULARY_SHARE = 0.5


def offline_error(source: str, error: BaseException) -> OSError:
    return OSError(
        f"could not fetch {source!r} from the Hugging Face Hub ({type(error).__name__}: "
        f"{str(error).splitlines()[0] if str(error) else 'no detail'}). This machine may be "
        f"offline. Download the checkpoint where you have network access "
        f"(model.save_pretrained(dir)) and pass the local directory: load_model('/path/to/dir')"
    )


def task_from_architectures(architectures: Sequence[str] | None) -> str:
    for arch in architectures or ():
        if arch.endswith(("ForSequenceClassification",)):
            return "sequence-classification"
        if arch.endswith(("ForMaskedLM",)):
            return "masked-lm"
        if arch.endswith(("ForCausalLM", "LMHeadModel")):
            return "causal-lm"
        if arch.endswith("ForConditionalGeneration"):
            return "seq2seq-lm"
    return "encoder"


def _auto_class(task: str):
    import transformers

    return {
        "sequence-classification": transformers.AutoModelForSequenceClassification,
        "masked-lm": transformers.AutoModelForMaskedLM,
        "causal-lm": transformers.AutoModelForCausalLM,
        "seq2seq-lm": transformers.AutoModelForSeq2SeqLM,
        "encoder": transformers.AutoModel,
    }[task]


def label_names_from_config(config, given: Sequence[str] | None) -> tuple[str, ...] | None:
    if given is not None:
        return tuple(str(x) for x in given)
    id2label = getattr(config, "id2label", None)
    if id2label:
        return tuple(str(id2label[i]) for i in sorted(int(k) for k in id2label))
    return None


def ensure_eager(model: nn.Module, attn_implementation: str | None, stacklevel: int = 3) -> str:
    config = getattr(model, "config", None)
    current = getattr(config, "_attn_implementation", None)
    if attn_implementation is None or current in (None, attn_implementation):
        return str(current)
    if not hasattr(model, "set_attn_implementation"):
        raise TypeError(f"{type(model).__name__} uses {current!r} attention and cannot switch to "
                        f"{attn_implementation!r}; load it with attn_implementation="
                        f"{attn_implementation!r}")
    warnings.warn(
        f"switched the attention implementation of {type(model).__name__} from {current!r} to "
        f"{attn_implementation!r}: with {current!r}, output_attentions returns no weights. Pass "
        f"attn_implementation=None to keep {current!r} (attention analyses will then refuse it)",
        ExplainWarning, stacklevel=stacklevel)
    model.set_attn_implementation(attn_implementation)
    return attn_implementation


@contextlib.contextmanager
def _no_weight_loading_bar():
    """transformers draws a progress bar per checkpoint load; a load of seconds needs none, and
    it would break the CLI's --quiet. Its previous setting is put back."""
    from transformers.utils import logging as hf_logging

    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()


def weights_error(where, error: Exception) -> ValueError:
    """The error for weights that cannot be read (a truncated or damaged safetensors file) or
    do not fit the architecture of the config (size mismatch), naming ``where``."""
    text = str(error)
    if "size mismatch" in text or "ignore_mismatched_sizes" in text or "shape" in text:
        return ValueError(f"the weights in {str(where)!r} do not fit the architecture its "
                          f"config.json describes (a layer's size differs); the config was "
                          f"edited or belongs to another model: restore the checkpoint as "
                          f"it was saved")
    first = text.strip().splitlines()[0] if text.strip() else type(error).__name__
    return ValueError(f"cannot read the weights in {str(where)!r} ({first}); the file is "
                      f"damaged or truncated: copy or save the checkpoint again")


def load(source, *, task, tokenizer, label_names, revision, allow_pickle,
         attn_implementation, local) -> dict[str, Any]:
    """A Hugging Face text checkpoint (directory or Hub id) with its tokenizer, checked: the
    ``LoadedModel`` fields ``model``, ``task``, ``tokenizer``, ``family``, ``label_names`` and
    ``provenance``."""
    import transformers

    common = {"revision": revision, "trust_remote_code": False}
    if local:
        common["local_files_only"] = True
    try:
        config = transformers.AutoConfig.from_pretrained(source, **common)
    except OSError as error:
        if local:
            raise ValueError(f"{source!r} is not a Hugging Face checkpoint: {error}") from None
        raise offline_error(source, error) from None
    except Exception as error:  # hub client errors (HTTP, connection) surface as many types
        if local:
            raise
        raise offline_error(source, error) from None
    if getattr(config, "auto_map", None):
        raise ValueError(f"{source!r} needs custom model code (auto_map); explain never runs "
                         f"remote or custom code")
    inferred = task_from_architectures(getattr(config, "architectures", None))
    task = task or inferred
    if task not in TEXT_TASKS:
        raise ValueError(f"{source!r} is a Hugging Face text model; task must be one of "
                         f"{', '.join(TEXT_TASKS)}, got {task!r}")
    kwargs = dict(common, use_safetensors=not allow_pickle)
    if attn_implementation is not None:
        kwargs["attn_implementation"] = attn_implementation
    if task == "sequence-classification" and label_names is not None:
        kwargs["num_labels"] = len(label_names)
        kwargs["id2label"] = dict(enumerate(label_names))
        kwargs["label2id"] = {n: i for i, n in enumerate(label_names)}
    if task == "sequence-classification" and label_names is not None and \
            getattr(config, "num_labels", len(label_names)) != len(label_names):
        raise ValueError(f"{len(label_names)} label names ({', '.join(map(str, label_names))}) "
                         f"for {source!r}, whose classification head has {config.num_labels} "
                         f"classes; pass {config.num_labels} names, one per class in index "
                         f"order")
    try:
        with warnings.catch_warnings(), _no_weight_loading_bar():
            warnings.simplefilter("ignore", FutureWarning)
            model = _auto_class(task).from_pretrained(source, **kwargs)
    except OSError as error:
        if local:
            raise ValueError(f"could not load weights from {source!r}: {error}") from None
        raise offline_error(source, error) from None
    except Exception as error:  # a damaged file, or weights of another shape than config.json
        if local:
            raise weights_error(source, error) from None
        raise
    model.eval()
    if tokenizer is None:
        if local:
            check_tokenizer_files(Path(source))
        try:
            tokenizer = transformers.AutoTokenizer.from_pretrained(source, **common)
        except (OSError, ValueError) as error:  # every task here is a text task
            raise ValueError(f"{source!r} has no usable tokenizer ({error}); pass "
                             f"load_model(..., tokenizer=AutoTokenizer.from_pretrained(...))"
                             ) from None
    prepare_tokenizer(tokenizer)
    family = family_of(model)
    check_vocabulary(tokenizer, model, family, source)
    implementation = ensure_eager(model, attn_implementation)
    return dict(
        model=model, task=task, tokenizer=tokenizer, family=family,
        label_names=label_names_from_config(model.config, label_names)
        if task == "sequence-classification" else None,
        provenance={"name": str(source), "source": str(source),
                    "revision": getattr(config, "_commit_hash", None) or revision,
                    "class": type(model).__name__, "attn_implementation": implementation,
                    "n_parameters": sum(p.numel() for p in model.parameters())},
    )


def check_tokenizer_files(directory: Path) -> None:
    if not any(any(directory.glob(pattern)) for pattern in _TOKENIZER_FILES):
        raise ValueError(
            f"{str(directory)!r} has no tokenizer files (none of {', '.join(_TOKENIZER_FILES)}), "
            f"so its tokenizer would know no words. Pass the tokenizer the model was trained "
            f"with: load_model({str(directory)!r}, tokenizer=AutoTokenizer.from_pretrained(...)), "
            f"or save it beside the weights (tokenizer.save_pretrained({str(directory)!r}))")


def _embedding_rows(model: nn.Module, family: Family) -> int | None:
    """Number of token ids the model can embed, when its family finds an ``nn.Embedding``."""
    name = family.embedding_name(model)
    embedding = model.get_submodule(name) if name is not None else None
    return embedding.num_embeddings if isinstance(embedding, nn.Embedding) else None


def check_vocabulary(tokenizer, model: nn.Module, family: Family, source) -> None:
    """Refuse a tokenizer with far fewer tokens than the model's embedding rows."""
    rows = _embedding_rows(model, family)
    if rows is None or len(tokenizer) >= _MIN_VOCABULARY_SHARE * rows:
        return
    raise ValueError(
        f"the tokenizer for {str(source)!r} ({type(tokenizer).__name__}) has {len(tokenizer)} "
        f"tokens but the model embeds {rows} token ids: it is not the model's tokenizer (most "
        f"words would read as unknown tokens). Pass the tokenizer the model was trained with: "
        f"load_model(..., tokenizer=AutoTokenizer.from_pretrained(...))")


def prepare_tokenizer(tokenizer) -> None:
    """Right padding (TextBatch relies on it) and a pad token for GPT-2 style tokenizers, which
    have none (padding positions are masked anyway)."""
    if tokenizer is None:
        return
    tokenizer.padding_side = "right"
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
