"""A grounded turn: the source's top chunks for the user's message go into the prompt,
numbered with their paths; the model is asked to cite them as [n]; the citations are
listed after the answer (n → path › heading).

Only the user's own words are kept in the session: the excerpts are retrieved again for
each turn, so a resumed session is grounded in the index as it is now.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

TOP_K = 5

SYSTEM = ("You are a helpful assistant in a terminal chat. Answer clearly and concisely, "
          "in plain text or simple Markdown.")
GROUNDED_SYSTEM = (SYSTEM + " Each question comes with numbered excerpts from the project's "
                   "documents. Answer from them when they are relevant, and cite each excerpt you "
                   "use as [n] right after the sentence it supports. If the excerpts do not hold "
                   "the answer, say so before answering from general knowledge.")

_CITE = re.compile(r"\[(\d+(?:\s*,\s*\d+)*)\]")


def where(hit) -> str:
    """`docs/a.md › Install › Linux`: the document and the chunk's heading path."""
    return " › ".join((hit.name,) + tuple(h for h in hit.headings if h))


def prompt(question: str, hits) -> str:
    """The user's message with the excerpts before it."""
    if not hits:
        return ("(No excerpt of the project's documents matched this question.)\n\n"
                f"Question: {question}")
    parts = ["Excerpts from the project's documents:"]
    for n, hit in enumerate(hits, 1):
        parts.append(f"[{n}] {where(hit)}\n{hit.text.strip()}")
    parts.append(f"Question: {question}")
    return "\n\n".join(parts)


def cited(answer: str, count: int) -> list[int]:
    """The excerpt numbers the answer cites ([2], [1, 3], [1][2]), in order of first use;
    numbers outside 1..count are not excerpts and are left out."""
    seen: list[int] = []
    for m in _CITE.finditer(answer):
        for n in (int(x) for x in m.group(1).split(",")):
            if 1 <= n <= count and n not in seen:
                seen.append(n)
    return seen


def citation_lines(answer: str, hits) -> list[str]:
    """What is printed after a grounded answer: each cited excerpt, or, when the answer
    cites none, what was retrieved."""
    if not hits:
        return ["no excerpt of the source matched"]
    numbers = cited(answer, len(hits))
    if numbers:
        return [f"[{n}] {where(hits[n - 1])}" for n in sorted(numbers)]
    return ["no citation; retrieved:"] + [f"[{n}] {where(h)}" for n, h in enumerate(hits, 1)]


@dataclass(frozen=True)
class Grounding:
    name: str
    config: object  # rag.sources.SourceConfig
    store_dir: str  # the project's absolute .amelia directory

    def retrieve(self, query: str) -> list:
        """The source's top chunks for the query (RagError when the index cannot be read)."""
        from ..rag.retrieval import search

        return search(self.config, self.store_dir, query, top_k=TOP_K)
