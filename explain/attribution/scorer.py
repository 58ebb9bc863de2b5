"""``Scorer``: the one forward pass every attribution method differentiates or perturbs: the
model's explained output (``OUTPUTS``) of each row, with the attributed tensor swapped in."""

from __future__ import annotations

import inspect
import itertools
from collections.abc import Mapping
from types import MappingProxyType

import torch
from torch import nn

from .. import hooks

__all__ = ["OUTPUTS", "Scorer", "scorer_for"]

#: What score is attributed: the target's probability, logit or log-probability.
OUTPUTS: Mapping[str, str] = MappingProxyType({
    "probability": "softmax probability of the target class or token (default)",
    "logit": "the raw logit of the target",
    "log_probability": "log-softmax of the target (useful for language models)",
})



class Scorer(nn.Module):
    """``forward(x, input_ids, attention_mask, token_type_ids, target, contrast, position,
    decoder_input_ids=None)`` -> ``(N,)``: the explained output of each row. ``x`` is the
    attributed tensor; for text it replaces the word-embedding output
    (``explain.hooks.edit_outputs``). For an encoder-decoder (task ``"seq2seq-lm"``) ``x`` is
    the encoder's token-embedding output, given to the encoder as ``inputs_embeds`` (the
    decoder, which may share the embedding matrix, still embeds ``decoder_input_ids``
    itself), and ``position`` indexes the decoder's logits."""

    def __init__(self, model: nn.Module, *, kind: str, task: str, output: str,
                 embedding_name: str | None = None) -> None:
        super().__init__()
        self.model = model
        self.kind = kind
        self.task = task
        self.output = output
        self.embedding_name = embedding_name
        try:
            parameters = inspect.signature(model.forward).parameters
        except (TypeError, ValueError):
            parameters = {}
        self.takes_token_types = "token_type_ids" in parameters or any(
            p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())

    @property
    def device(self) -> torch.device:
        """The device of the model's first parameter (or buffer); the CPU when it has none."""
        for tensor in itertools.chain(self.model.parameters(), self.model.buffers()):
            return tensor.device
        return torch.device("cpu")

    def logits(self, x: torch.Tensor, input_ids=None, attention_mask=None,
               token_type_ids=None, decoder_input_ids=None) -> torch.Tensor:
        if self.kind != "text":
            out = self.model(x)
        elif self.task == "seq2seq-lm":
            if decoder_input_ids is None:
                raise ValueError("an encoder-decoder is scored on a decoder prefix; pass "
                                 "decoder_input_ids (the collated items carry them)")
            encoded = self.model.get_encoder()(inputs_embeds=x, attention_mask=attention_mask,
                                               return_dict=True)
            out = self.model(encoder_outputs=encoded, attention_mask=attention_mask,
                             decoder_input_ids=decoder_input_ids, use_cache=False)
        else:
            def swap(_module, _inputs, output):
                if output.shape != x.shape:
                    raise RuntimeError(f"embedding output {tuple(output.shape)} does not match "
                                       f"the attributed tensor {tuple(x.shape)}")
                return x

            kwargs = {"attention_mask": attention_mask}
            if token_type_ids is not None and self.takes_token_types:
                kwargs["token_type_ids"] = token_type_ids
            with hooks.edit_outputs(self.model, {self.embedding_name: swap}):
                out = self.model(input_ids, **kwargs)
        if hasattr(out, "logits"):
            out = out.logits
        elif isinstance(out, (tuple, list)):
            out = out[0]
        return out

    def distribution(self, x, input_ids=None, attention_mask=None, token_type_ids=None,
                     position=None, decoder_input_ids=None) -> torch.Tensor:
        """``(N, K)`` scores over classes (or vocabulary at ``position``) under ``output``."""
        logits = self.logits(x, input_ids, attention_mask, token_type_ids, decoder_input_ids)
        if logits.dim() == 3:
            logits = logits[torch.arange(logits.shape[0], device=logits.device), position]
        if self.output == "probability":
            return torch.softmax(logits, dim=-1)
        if self.output == "log_probability":
            return torch.log_softmax(logits, dim=-1)
        return logits

    def forward(self, x, input_ids=None, attention_mask=None, token_type_ids=None, target=None,
                contrast=None, position=None, decoder_input_ids=None):
        scores = self.distribution(x, input_ids, attention_mask, token_type_ids, position,
                                   decoder_input_ids)
        rows = torch.arange(scores.shape[0], device=scores.device)
        out = scores[rows, target]
        if contrast is not None and bool((contrast >= 0).any()):
            other = scores[rows, contrast.clamp(min=0)]
            out = out - torch.where(contrast >= 0, other, torch.zeros_like(other))
        return out



def scorer_for(loaded, prepared, output: str) -> Scorer:
    """The ``Scorer`` of ``loaded`` for the ``Prepared`` inputs ``prepared``."""
    return Scorer(loaded.model, kind=prepared.kind, task=loaded.task, output=output,
                  embedding_name=prepared.embedding_name)
