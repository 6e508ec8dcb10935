"""Recipes from git repositories (DESIGN §8): `include: [{recipe: git+URL//PATH@REF}]`.

`refs.parse` reads a reference (pure), `lock` keeps `amelia.lock` (the commit each remote
recipe resolved to), `fetch` brings a pinned commit's tree onto disk under
`.amelia/recipes/`. A local recipe is not fetched: the include resolver reads it relative
to the including file. Standard library only at import time.
"""

from __future__ import annotations

from .errors import RecipeError
from .fetch import FetchedRecipe, fetch
from .lock import Lock, LockEntry
from .refs import RecipeRef, parse

__all__ = ["RecipeError", "RecipeRef", "parse", "Lock", "LockEntry", "fetch", "FetchedRecipe"]
