"""The one error type of weight loading; messages name the offending keys and the fix."""
from __future__ import annotations


class CheckpointError(ValueError):
    """A checkpoint is missing, truncated, of another architecture, or in an unknown layout."""


def describe_keys(keys, limit: int = 8) -> str:
    """``'a', 'b', ... (+N more)`` for error messages."""
    keys = sorted(keys)
    shown = ", ".join(f"'{k}'" for k in keys[:limit])
    return shown + (f" ... (+{len(keys) - limit} more)" if len(keys) > limit else "")
