"""Split a document's text into overlapping chunks for embedding (DESIGN §5, issue 12).

Pure and deterministic, standard library only. The order of splitting:

1. Markdown headings (`#`..`######` lines outside ``` / ~~~ fences) start a section; each
   section's chunks carry the heading path above them (a deeper heading nests, a heading of
   the same or a higher level replaces). The heading line is the start of its section's
   text, so it is embedded with the body it names. Setext (underlined) headings are not
   recognised. With `markdown=False` the whole text is one section with no headings.
2. Within a section: paragraphs (split at blank lines); a paragraph longer than `size` is
   split into sentences (after `.!?…。！？`, optionally followed by one closing quote or
   bracket, when whitespace follows; a line break also ends a "sentence", which keeps lists
   and code line-aligned); a sentence longer than `size` is split into words (runs of
   non-whitespace). A single word longer than `size` is kept whole, as its own chunk.
3. The pieces are packed greedily into chunks of at most `size` characters. A chunk after
   the first of its section starts up to `overlap` characters before the previous chunk's
   end, at the start of a word of the previous chunk, so the two share whole words; the
   overlap shrinks (down to none) when it would push the chunk's first new piece over
   `size`. Chunks never overlap across a heading.

Every boundary falls at whitespace or at the ends of the text, and a chunk's `text` is
exactly the original slice `text[start:end]`: internal whitespace and newlines are kept,
and leading/trailing whitespace is never part of a chunk. `size` counts those characters.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass

__all__ = ["Chunk", "chunk", "validate_chunking", "MIN_SIZE", "DEFAULT_SIZE", "DEFAULT_OVERLAP"]

DEFAULT_SIZE = 800
DEFAULT_OVERLAP = 200
MIN_SIZE = 100


@dataclass(frozen=True)
class Chunk:
    """One chunk. `text == original[start:end]` (character offsets, not bytes)."""

    text: str
    start: int
    end: int
    headings: tuple[str, ...]
    index: int  # position among the document's chunks, from 0


_FENCE = re.compile(r" {0,3}(`{3,}|~{3,})(.*)")
_HEADING = re.compile(r" {0,3}(#{1,6})(?:[ \t]+(.*?))?[ \t]*")
_CLOSING_HASHES = re.compile(r"(?:^|[ \t]+)#+$")
_PARAGRAPH_GAP = re.compile(r"\n\s*\n")
_ENDS = ".!?…。！？"
_CLOSERS = "\"'”’»)\\]"
_SENTENCE_GAP = re.compile(
    rf"(?<=[{_ENDS}])\s+|(?<=[{_ENDS}][{_CLOSERS}])\s+|\s*\n\s*"
)
_WORD = re.compile(r"\S+")


def validate_chunking(size: object, overlap: object) -> str | None:
    """The problem with a `chunk: {size, overlap}` setting, or None when it is usable."""
    if isinstance(size, bool) or not isinstance(size, int):
        return "size must be an integer"
    if isinstance(overlap, bool) or not isinstance(overlap, int):
        return "overlap must be an integer"
    if size < MIN_SIZE:
        return f"size must be at least {MIN_SIZE}"
    if overlap < 0:
        return "overlap must not be negative"
    if overlap >= size:
        return "overlap must be smaller than size"
    return None


def chunk(
    text: str,
    size: int = DEFAULT_SIZE,
    overlap: int = DEFAULT_OVERLAP,
    markdown: bool = True,
) -> list[Chunk]:
    """Chunks of `text`; [] for empty or whitespace-only text.

    Raises ValueError for a setting `validate_chunking` rejects: the resolver reports
    those to the user with a location before any text is chunked.
    """
    problem = validate_chunking(size, overlap)
    if problem is not None:
        raise ValueError(problem)
    chunks: list[Chunk] = []
    for start, end, headings in _sections(text, markdown):
        for a, b in _pack(text, start, end, size, overlap):
            chunks.append(Chunk(text[a:b], a, b, headings, len(chunks)))
    return chunks


def _sections(text: str, markdown: bool) -> list[tuple[int, int, tuple[str, ...]]]:
    """(start, end, heading path) per section, covering the text in order."""
    if not markdown:
        return [(0, len(text), ())]
    sections: list[tuple[int, int, tuple[str, ...]]] = []
    stack: list[tuple[int, str]] = []
    section_start = 0
    fence: str | None = None
    pos = 0
    for raw in text.split("\n"):
        line = raw.rstrip("\r")
        fence_match = _FENCE.fullmatch(line)
        if fence is not None:
            # A fence closes with the same character, at least as long, and no info string.
            if (
                fence_match
                and fence_match.group(1)[0] == fence[0]
                and len(fence_match.group(1)) >= len(fence)
                and not fence_match.group(2).strip()
            ):
                fence = None
        elif fence_match and not (fence_match.group(1)[0] == "`" and "`" in fence_match.group(2)):
            fence = fence_match.group(1)
        else:
            heading = _HEADING.fullmatch(line)
            if heading:
                sections.append((section_start, pos, _path(stack)))
                section_start = pos
                level = len(heading.group(1))
                title = _CLOSING_HASHES.sub("", heading.group(2) or "").strip()
                while stack and stack[-1][0] >= level:
                    stack.pop()
                stack.append((level, title))
        pos += len(raw) + 1
    sections.append((section_start, len(text), _path(stack)))
    return sections


def _path(stack: list[tuple[int, str]]) -> tuple[str, ...]:
    return tuple(title for _, title in stack)


def _trimmed(text: str, a: int, b: int) -> tuple[int, int]:
    while a < b and text[a].isspace():
        a += 1
    while b > a and text[b - 1].isspace():
        b -= 1
    return a, b


def _split(text: str, a: int, b: int, gap: re.Pattern[str]) -> list[tuple[int, int]]:
    """The non-blank spans of text[a:b] between matches of `gap`, trimmed of whitespace."""
    spans = []
    cursor = a
    for match in gap.finditer(text, a, b):
        spans.append(_trimmed(text, cursor, match.start()))
        cursor = match.end()
    spans.append(_trimmed(text, cursor, b))
    return [(s, e) for s, e in spans if s < e]


def _pieces(text: str, a: int, b: int, size: int) -> list[tuple[int, int]]:
    """Paragraphs, then sentences, then words: the units that are packed, in order."""
    pieces: list[tuple[int, int]] = []
    for pa, pb in _split(text, a, b, _PARAGRAPH_GAP):
        if pb - pa <= size:
            pieces.append((pa, pb))
            continue
        for sa, sb in _split(text, pa, pb, _SENTENCE_GAP):
            if sb - sa <= size:
                pieces.append((sa, sb))
            else:
                pieces.extend(m.span() for m in _WORD.finditer(text, sa, sb))
    return pieces


def _pack(text: str, a: int, b: int, size: int, overlap: int) -> list[tuple[int, int]]:
    """(start, end) of the chunks of one section."""
    pieces = _pieces(text, a, b, size)
    # Where an overlap may start: any word start in the section (pieces start at words).
    word_starts = [m.start() for m in _WORD.finditer(text, a, b)]
    spans: list[tuple[int, int]] = []
    i = 0
    while i < len(pieces):
        first_start, first_end = pieces[i]
        start = first_start
        if spans and overlap > 0:
            prev_start, prev_end = spans[-1]
            # The earliest word of the previous chunk within `overlap` of its end that still
            # lets the first new piece fit; strictly after prev_start so chunks advance.
            lowest = max(prev_end - overlap, prev_start + 1, first_end - size)
            k = bisect.bisect_left(word_starts, lowest)
            if k < len(word_starts) and word_starts[k] < prev_end:
                start = word_starts[k]
        end = first_end
        i += 1
        while i < len(pieces) and pieces[i][1] - start <= size:
            end = pieces[i][1]
            i += 1
        spans.append((start, end))
    return spans
