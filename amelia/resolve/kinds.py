"""What a step kind's `resolve` hook is given: one step's document, place and reporter.

The generic resolver knows no kind's settings: it calls each kind's hook through the
registry (steps.resolve) with a KindContext, and checks the template texts the hook
returns like any other (references, dependencies).
"""

from __future__ import annotations

from dataclasses import dataclass

from .files import read_text_file


@dataclass(frozen=True)
class KindContext:
    doc: object  # the step's Document: its data (`agents:` ...), params, models by name
    root: str  # the project root: where files named in the step are read
    base: tuple  # the step's key path in its document, ("steps", id)
    err: object  # err(message, key path, hint="") reports an error at a key of doc
    # render(text, key path) -> str | None: a text with its ${{ params.X }} / ${{ name }}
    # filled in (the step's foreach item too); None after an error (reported)
    render: object = None

    @property
    def models(self) -> dict:
        """name → ModelConfig of the document's `models:` (and `default`)."""
        return self.doc.models

    def read_text(self, rel: str) -> tuple[str | None, str]:
        """(text, sha256) of a project file, or (None, why). Return (rel, sha256) in
        Resolved.sources, so that editing the file redoes the resolution."""
        return read_text_file(self.root, rel)

    def template_texts(self, data: dict, fields: tuple) -> list:
        """(text, key path, None) for each of `fields` whose value is a string."""
        return [(data[f], self.base + (f,), None) for f in fields if isinstance(data.get(f), str)]
