"""The store's own error: a file that cannot be used as a run store."""

__all__ = ["StoreError"]


class StoreError(ValueError):
    """A file that cannot be used as a run store; the message names it and what to do."""
