"""The graph maths of attention maps: rollout, flow and per-head statistics (pure numpy).

Rollout (Abnar & Zuidema 2020)
    Per layer ``A' = 0.5 * mean_heads(A) + 0.5 * I``, rows renormalised; the rollout is the
    product ``A'_L @ ... @ A'_1``. Row ``q`` says how much of the last layer's token ``q`` comes
    from each input token. Needs every layer and head captured.

Flow (Abnar & Zuidema 2020)
    The layers form a graph: node ``(l, t)`` for layer ``l = 0..L`` (0 = the input) and token
    ``t``; an edge from ``(l, i)`` to ``(l - 1, j)`` with capacity ``A'_l[i, j]``. The flow of
    query ``q`` to input token ``j`` is the maximum flow from ``(L, q)`` to ``(0, j)``; the row is
    then normalised to sum to 1 (as in the paper's code). Capacities are scaled to integers
    (``FLOW_SCALE``) for ``scipy.sparse.csgraph.maximum_flow``. Cost: a graph of ``(L + 1) * T``
    nodes and ``L * T**2`` edges and one max-flow per input token, i.e. ``T`` max-flows of
    ``O(L * T**2)`` edges for one query row; inputs are limited to ``FLOW_MAX_TOKENS`` tokens.

Head statistics (per layer and head, averaged over all query rows of a text)
    see ``HEAD_STATISTICS``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType

import numpy as np

__all__ = ["FLOW_MAX_TOKENS", "FLOW_SCALE", "HEAD_STATISTICS", "attention_flow",
           "attention_rollout", "head_statistics"]

#: Per-head statistics (``head_statistics()`` columns, ``plot("head_summary", statistic=...)``).
HEAD_STATISTICS: Mapping[str, str] = MappingProxyType({
    "entropy": "entropy of an attention row (nats); low = focused, log(T) = uniform",
    "mean_distance": "attention-weighted mean |query - key| distance (tokens)",
    "special_share": "share of attention to special tokens ([CLS], [SEP], ...)",
    "previous_share": "share of attention to the previous token",
    "self_share": "share of attention to the query token itself",
})
#: Longest input (tokens) ``attention_flow`` accepts: T max-flows over L*T^2 edges per row.
FLOW_MAX_TOKENS = 64
#: Capacities are multiplied by this and rounded to integers for the max-flow solver.
FLOW_SCALE = 1 << 20


def _layer_means(maps: np.ndarray) -> np.ndarray:
    maps = np.asarray(maps, dtype=np.float64)
    if maps.ndim == 4:
        maps = maps.mean(axis=1)
    if maps.ndim != 3 or maps.shape[-1] != maps.shape[-2]:
        raise ValueError(f"attention maps must have shape (layers, heads, T, T) or (layers, T, T), "
                         f"got {maps.shape}")
    return maps


def _residual(layer_map: np.ndarray) -> np.ndarray:
    augmented = 0.5 * layer_map + 0.5 * np.eye(layer_map.shape[-1])
    return augmented / augmented.sum(axis=-1, keepdims=True)


def attention_rollout(maps: np.ndarray) -> np.ndarray:
    """Attention rollout of one text: ``(layers, heads, T, T)`` or ``(layers, T, T)`` -> ``(T, T)``.

    ``A'_l = rownorm(0.5 * mean_heads(A_l) + 0.5 * I)``, result ``A'_L @ ... @ A'_1``: row ``q``
    is the share of the last layer's token ``q`` that each input token accounts for (sums to 1).
    """
    layers = _layer_means(maps)
    rollout = np.eye(layers.shape[-1])
    for layer_map in layers:
        rollout = _residual(layer_map) @ rollout
    return rollout


def attention_flow(maps: np.ndarray, *, query: int) -> np.ndarray:
    """Attention flow from the last layer's token ``query`` to each input token: ``(T,)``.

    Max-flow over the layer graph (see the module docstring) with residual-augmented capacities,
    normalised to sum to 1. Limited to ``FLOW_MAX_TOKENS`` tokens.
    """
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import maximum_flow

    layers = _layer_means(maps)
    n_layers, length = layers.shape[0], layers.shape[-1]
    if length > FLOW_MAX_TOKENS:
        raise ValueError(f"attention flow is limited to {FLOW_MAX_TOKENS} tokens (it solves T "
                         f"max-flows over L*T^2 edges per query); this text has {length}. Use "
                         f"rollout, or pass a shorter text or max_length={FLOW_MAX_TOKENS}")
    if not isinstance(query, (int, np.integer)) or not 0 <= query < length:
        raise ValueError(f"query {query!r} is out of range; valid: 0..{length - 1}")
    rows, cols, caps = [], [], []
    for layer in range(1, n_layers + 1):
        capacity = np.rint(_residual(layers[layer - 1]) * FLOW_SCALE).astype(np.int64)
        i, j = np.nonzero(capacity)
        rows.append(layer * length + i)
        cols.append((layer - 1) * length + j)
        caps.append(capacity[i, j])
    n_nodes = (n_layers + 1) * length
    graph = csr_matrix((np.concatenate(caps).astype(np.int32),
                        (np.concatenate(rows), np.concatenate(cols))), shape=(n_nodes, n_nodes))
    source = n_layers * length + int(query)
    values = np.array([maximum_flow(graph, source, j).flow_value for j in range(length)],
                      dtype=np.float64)
    total = values.sum()
    return values / total if total > 0 else values


def head_statistics(maps: np.ndarray, special: Sequence[bool]) -> dict[str, np.ndarray]:
    """Per (layer, head) statistics (``HEAD_STATISTICS``) of one text's maps ``(L, H, Tq, Tk)``.

    ``special``: per key token, True for special tokens. Each statistic is an ``(L, H)`` array,
    the mean over query rows; with ``Tq != Tk`` (cross attention) the positional ones are NaN.
    """
    a = np.asarray(maps, dtype=np.float64)
    length = a.shape[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.where(a > 0, np.log(np.where(a > 0, a, 1.0)), 0.0)
    stats = {
        "entropy": -(a * logs).sum(-1).mean(-1),
        "special_share": a[..., np.asarray(special, dtype=bool)].sum(-1).mean(-1),
    }
    if a.shape[-2] != length:
        # Cross attention: queries and keys are different sequences, so positions do not compare.
        for key in ("mean_distance", "self_share", "previous_share"):
            stats[key] = np.full(a.shape[:2], np.nan)
        return stats
    positions = np.arange(length)
    distance = np.abs(positions[:, None] - positions[None, :])
    stats["mean_distance"] = (a * distance).sum(-1).mean(-1)
    stats["self_share"] = np.diagonal(a, axis1=-2, axis2=-1).mean(-1)
    stats["previous_share"] = (np.diagonal(a, offset=-1, axis1=-2, axis2=-1).mean(-1)
                               if length > 1 else np.zeros(a.shape[:2]))
    return stats
