"""Attention maps: capture, words, rollout and flow, head statistics and head importance.

One function, ``attention(model, texts)``, returns one result, ``AttentionResult``::

    result = explain.attention(model, ["a charming, funny film"])
    result.matrix(0, layer=5, head=3)              # (T, T) numpy, rows sum to 1
    result.rollout(0, level="word")                # share of the first token's rollout per word
    result.head_statistics()                       # one row per (layer, head)
    result.plot("grid")                            # matplotlib Figure
    result.save_html("view.html")                  # the interactive view, one offline file

The package, one concept per module: ``capture`` (the forward pass, ``attention()``), ``graph``
(rollout, flow and head statistics: pure numpy), ``result`` (``AttentionResult``),
``importance`` (``head_importance`` and its ``HeadImportanceResult``: masking heads),
``alignment`` (``alignment_scores``: the alignment error rate of cross attention and attributions
against a gold word alignment), ``figures`` (the plots), ``view`` (the
offline notebook view), ``inputs`` (the input checks and batch plumbing the first and the
fourth share).
"""

from .alignment import AlignmentResult, alignment_scores
from .capture import DTYPES, attention
from .graph import FLOW_MAX_TOKENS, HEAD_STATISTICS, attention_flow, attention_rollout
from .importance import HeadImportanceResult, head_importance
from .result import ATTENTIONS, LEVELS, SIDES, AttentionResult

__all__ = ["ATTENTIONS", "DTYPES", "FLOW_MAX_TOKENS", "HEAD_STATISTICS", "LEVELS", "SIDES",
           "AlignmentResult", "AttentionResult", "HeadImportanceResult", "alignment_scores",
           "attention", "attention_flow", "attention_rollout", "head_importance"]
