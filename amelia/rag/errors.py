"""The one error class of the RAG library: a message and a hint, no location.

Callers give it a place: the index step kind turns it into a step failure, the CLI into
an AmeliaError with an exit code."""

from __future__ import annotations


class RagError(Exception):
    def __init__(self, message: str, hint: str = ""):
        super().__init__(message)
        self.message = message
        self.hint = hint
