"""The one warning category of `explain`, so users can filter or escalate our warnings alone."""

from __future__ import annotations

__all__ = ["ExplainWarning"]


class ExplainWarning(UserWarning):
    """Something the caller should know: a switched attention implementation, a truncated text,
    a group too small for an interval. Never used for what should be an error."""
