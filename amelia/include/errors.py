"""The one error of remote recipes: a message and a hint, no location (the caller points it
at the include line)."""

from __future__ import annotations


class RecipeError(Exception):
    """A recipe reference that is malformed, or one that cannot be fetched or locked."""

    def __init__(self, message: str, hint: str = ""):
        super().__init__(message)
        self.message = message
        self.hint = hint
