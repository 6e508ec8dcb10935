"""Which parts of the file format this version of amelia implements: the one registry.

The JSON Schema describes the whole format, including keys whose feature has not been
built yet. Such a key is never accepted and ignored: resolving a file that uses one is
a located error, "'approve' is not available in this version of amelia" (fail closed).
A later version turns a feature on here, in one place, by setting `available=True`
(and implementing what its keys mean).

No I/O and no imports from the rest of amelia: the pipeline model consults this.
"""

from __future__ import annotations

from dataclasses import dataclass

ANY = "*"  # in a key path: any name (a step id, an agent name)


@dataclass(frozen=True)
class Key:
    """One key of the format that belongs to a feature."""

    path: tuple  # where the key is, from the top of a document; ANY matches any name
    hint: str  # what to do instead while the feature is not available
    kind: str = ""  # the step kind this key marks, if it marks one (retrieve, git)

    @property
    def name(self) -> str:
        return self.path[-1]

    def message(self) -> str:
        if self.kind:
            return f"'{self.kind}' steps are not available in this version of amelia"
        return f"'{self.name}' is not available in this version of amelia"


@dataclass(frozen=True)
class Feature:
    name: str
    available: bool
    keys: tuple  # Key, ...
    summary: str = ""


_CONTEXT_HINT = "put the text the agent needs in `inputs` and the prompt"

FEATURES = {f.name: f for f in (
    Feature("rag", True, summary="RAG sources, retrieval before a call, retrieve steps", keys=(
        Key(("sources",), "RAG sources come in a later version of amelia; for now list the files a "
                          "step reads under its `inputs`"),
        Key(("qdrant",), "remove it: it configures the index of RAG sources, which come in a later "
                         "version of amelia"),
        Key(("agents", ANY, "sources"), "remove it; " + _CONTEXT_HINT),
        Key(("steps", ANY, "agent", "sources"), "remove it; " + _CONTEXT_HINT),
        Key(("steps", ANY, "context"), _CONTEXT_HINT),
        Key(("steps", ANY, "retrieve"), "use a `run:` step for now", kind="retrieve"),
    )),
    Feature("targets", True, summary="git targets: steps that run in a worktree and commit there", keys=(
        Key(("targets",), "git targets come in a later version of amelia; for now commit the outputs "
                          "yourself, e.g. in a `run:` step"),
        Key(("steps", ANY, "target"), "remove it: git targets come in a later version of amelia; "
                                      "the step's outputs stay in the project"),
        Key(("steps", ANY, "git"), "use a `run:` step for now", kind="git"),
    )),
    Feature("recipes", True, summary="`include:` of other pipeline files", keys=(
        Key(("include",), "recipes come in a later version of amelia; for now copy the recipe's "
                          "steps into this file"),
    )),
    Feature("approval", False, summary="`approve: true` pauses a run before the step", keys=(
        Key(("steps", ANY, "approve"), "remove it: approval gates come in a later version of amelia, "
                                       "and until then nothing would stop the run before this step"),
    )),
)}


def available(name: str) -> bool:
    return FEATURES[name].available


def unavailable_keys() -> list:
    """Every Key whose feature is not available."""
    return [k for f in FEATURES.values() if not f.available for k in f.keys]


def kind_key(kind: str) -> Key | None:
    """The Key of an unavailable step kind, or None when the kind may be used."""
    for k in unavailable_keys():
        if k.kind == kind:
            return k
    return None


def find(data, skip_kinds: bool = True) -> list:
    """(Key, concrete key path) for each unavailable key used in a document's data.

    Keys that mark a step kind are left to the step's own checks (a
    step that does two things is one error, not two) unless skip_kinds is False."""
    found = []
    for key in unavailable_keys():
        if key.kind and skip_kinds:
            continue
        for path in _walk(data, key.path, ()):
            found.append((key, path))
    return found


def _walk(node, pattern: tuple, at: tuple):
    if not pattern:
        yield at
        return
    if not isinstance(node, dict):
        return
    head, rest = pattern[0], pattern[1:]
    names = list(node) if head == ANY else [head] if head in node else []
    for name in names:
        yield from _walk(node[name], rest, at + (name,))
