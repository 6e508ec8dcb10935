"""amelia.rag.chunking: sizes, word boundaries, overlap, heading paths, offsets (issue 12 item 2)."""

from __future__ import annotations

import dataclasses
import random

import pytest

from amelia.rag.chunking import Chunk, chunk, validate_chunking


def check_invariants(text: str, chunks: list[Chunk], size: int, overlap: int) -> None:
    """What every chunking of every text must satisfy."""
    for i, c in enumerate(chunks):
        assert c.index == i
        # Offsets map back: the chunk is exactly the original slice.
        assert 0 <= c.start < c.end <= len(text)
        assert text[c.start:c.end] == c.text
        # No surrounding whitespace, and every boundary at whitespace or a text end: no word cut.
        assert not c.text[0].isspace() and not c.text[-1].isspace()
        assert c.start == 0 or text[c.start - 1].isspace()
        assert c.end == len(text) or text[c.end].isspace()
        # Size respected unless the chunk is one word longer than size.
        if len(c.text) > size:
            assert len(c.text.split()) == 1, c
    for prev, nxt in zip(chunks, chunks[1:]):
        # Chunks advance, and overlap is bounded.
        assert nxt.start > prev.start and nxt.end > prev.end
        assert prev.end - nxt.start <= overlap
    # Every word of the text is in some chunk (nothing dropped).
    covered = [False] * len(text)
    for c in chunks:
        covered[c.start:c.end] = [True] * (c.end - c.start)
    for i, ch in enumerate(text):
        if not ch.isspace():
            assert covered[i], (i, text[max(0, i - 20):i + 20])


def words_text(rng: random.Random, n: int) -> str:
    return " ".join("w" * rng.randint(1, 9) for _ in range(n))


@pytest.mark.parametrize("text", ["", " ", "\n\n\t  \n", "\u3000\u00a0 \n"])
def test_empty_and_whitespace_only_text_gives_no_chunks(text):
    assert chunk(text) == []
    assert chunk(text, markdown=False) == []


def test_short_text_is_one_chunk_without_surrounding_whitespace():
    text = "\n\n  Hello world.  \n"
    [c] = chunk(text)
    assert (c.text, c.start, c.end, c.headings, c.index) == ("Hello world.", 4, 16, (), 0)


def test_chunk_is_frozen():
    [c] = chunk("One chunk.")
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.text = "changed"  # type: ignore[misc]


def test_paragraphs_are_packed_whole_up_to_size():
    paragraphs = [f"Paragraph {i} " + "x" * 60 + "." for i in range(6)]  # ~74 chars each
    text = "\n\n".join(paragraphs)
    chunks = chunk(text, size=200, overlap=0)
    check_invariants(text, chunks, 200, 0)
    # Two paragraphs (74 + 2 + 74) fit in 200, three do not: each chunk holds two whole ones.
    assert [c.text for c in chunks] == [
        "\n\n".join(paragraphs[i:i + 2]) for i in range(0, 6, 2)
    ]


def test_long_paragraph_splits_at_sentences_not_mid_sentence():
    sentences = [f"Sentence number {i} says something fairly short." for i in range(20)]
    text = " ".join(sentences)
    chunks = chunk(text, size=150, overlap=0)
    check_invariants(text, chunks, 150, 0)
    assert len(chunks) > 1
    for c in chunks:
        assert c.text.endswith("."), c.text
        assert c.text.startswith("Sentence"), c.text


def test_long_sentence_splits_at_words():
    text = " ".join(f"word{i}" for i in range(200))  # one "sentence", no period
    chunks = chunk(text, size=100, overlap=0)
    check_invariants(text, chunks, 100, 0)
    assert len(chunks) > 5
    assert " ".join(c.text for c in chunks) == text  # no overlap: the words, once each


def test_word_longer_than_size_is_its_own_whole_chunk():
    long_word = "z" * 250
    text = f"short words before {long_word} and after"
    chunks = chunk(text, size=100, overlap=30)
    check_invariants(text, chunks, 100, 30)
    assert [c.text for c in chunks] == ["short words before", long_word, "and after"]


def test_consecutive_chunks_overlap_by_whole_words_within_the_bound():
    text = " ".join(f"w{i:03d}" for i in range(300))  # 4-char words, 1,199 chars
    chunks = chunk(text, size=100, overlap=30)
    check_invariants(text, chunks, 100, 30)
    for prev, nxt in zip(chunks, chunks[1:]):
        shared = prev.end - nxt.start
        # Words are 4 chars + a space, so the best whole-word overlap within 30 is 29.
        assert shared == 29, (prev, nxt)
        assert prev.text.endswith(text[nxt.start:prev.end])


def test_zero_overlap_means_disjoint_chunks():
    text = " ".join(f"w{i:03d}" for i in range(300))
    chunks = chunk(text, size=100, overlap=0)
    for prev, nxt in zip(chunks, chunks[1:]):
        assert nxt.start > prev.end


MARKDOWN = """\
Preamble before any heading.

# Install

Get it.

## From PyPI

```sh
# this is a shell comment, not a heading
pip install amelia
```

~~~
## nor this
~~~

### Extras
Optional parts.

## From source ##
Clone it.

# Usage
Run it.
#hashtag is not a heading
"""


def test_heading_paths_nest_replace_and_ignore_fenced_code():
    chunks = chunk(MARKDOWN, size=500, overlap=100)
    check_invariants(MARKDOWN, chunks, 500, 100)
    assert [(c.headings, c.text.split("\n")[0]) for c in chunks] == [
        ((), "Preamble before any heading."),
        (("Install",), "# Install"),
        (("Install", "From PyPI"), "## From PyPI"),
        (("Install", "From PyPI", "Extras"), "### Extras"),
        (("Install", "From source"), "## From source ##"),
        (("Usage",), "# Usage"),
    ]
    # The fenced '#' lines stayed inside their section's chunk.
    assert "# this is a shell comment" in chunks[2].text and "## nor this" in chunks[2].text
    assert chunks[-1].text.endswith("#hashtag is not a heading")


def test_headings_start_new_chunks_and_overlap_never_crosses_them():
    body = " ".join(f"w{i:03d}" for i in range(60))
    text = f"# A\n{body}\n\n# B\n{body}\n"
    chunks = chunk(text, size=100, overlap=50)
    check_invariants(text, chunks, 100, 50)
    b_start = text.index("# B")
    first_b = next(c for c in chunks if c.headings == ("B",))
    assert first_b.start == b_start
    assert all(c.end <= b_start for c in chunks if c.headings == ("A",))


def test_markdown_false_ignores_headings():
    chunks = chunk("# Title\n\nBody.", markdown=False)
    assert [(c.text, c.headings) for c in chunks] == [("# Title\n\nBody.", ())]


def test_unfenced_after_unclosed_fence_stays_code():
    text = "# Top\n```\n# inside\n\nmore"
    chunks = chunk(text)
    assert [c.headings for c in chunks] == [("Top",)]


def test_unicode_text_offsets_are_characters():
    sentences = ["Ça coûte 5 € — déjà payé.", "Straße über Brücken.", "日本語の文です。", "Ελληνικά κείμενα εδώ.", "emoji 🙂🚀 ok."]
    text = "# Überblick\n\n" + " ".join(sentences * 12)
    chunks = chunk(text, size=120, overlap=40)
    check_invariants(text, chunks, 120, 40)
    assert len(chunks) > 3
    assert all(c.headings == ("Überblick",) for c in chunks)
    assert any("🙂🚀" in c.text for c in chunks)


def test_crlf_line_endings():
    text = "# One\r\nBody one.\r\n\r\n## Two\r\nBody two.\r\n"
    chunks = chunk(text)
    check_invariants(text, chunks, 800, 200)
    assert [c.headings for c in chunks] == [("One",), ("One", "Two")]


def test_deterministic():
    rng = random.Random(7)
    text = words_text(rng, 2000)
    assert chunk(text, 300, 80) == chunk(text, 300, 80)


def random_document(rng: random.Random) -> str:
    parts = []
    for _ in range(rng.randint(0, 30)):
        kind = rng.random()
        if kind < 0.15:
            parts.append("#" * rng.randint(1, 6) + " " + words_text(rng, rng.randint(0, 3)))
        elif kind < 0.22:
            parts.append("```\n# code " + words_text(rng, 5) + "\n\n" + words_text(rng, 4) + "\n```")
        elif kind < 0.27:
            parts.append("x" * rng.randint(50, 400))  # may be a word longer than size
        else:
            sentences = [
                words_text(rng, rng.randint(1, 40)) + rng.choice([".", "!", "?", "", ".\n"])
                for _ in range(rng.randint(1, 12))
            ]
            parts.append(" ".join(sentences))
    seps = ["\n\n", "\n", " ", "\n \n\t\n", "\r\n\r\n"]
    return "".join(p + rng.choice(seps) for p in parts)


def test_invariants_hold_on_seeded_random_texts():
    rng = random.Random(12)
    for _ in range(300):
        text = random_document(rng)
        size = rng.randint(100, 600)
        overlap = rng.randint(0, size - 1)
        markdown = rng.random() < 0.8
        chunks = chunk(text, size, overlap, markdown)
        check_invariants(text, chunks, size, overlap)
        if not text.strip():
            assert chunks == []


def test_overlap_is_present_on_random_plain_texts():
    rng = random.Random(3)
    for _ in range(50):
        text = words_text(rng, rng.randint(100, 600))
        size = rng.randint(100, 400)
        overlap = rng.randint(20, size - 1)
        chunks = chunk(text, size, overlap, markdown=False)
        check_invariants(text, chunks, size, overlap)
        # Words are at most 9 chars: a word always fits in an overlap of 20 or more.
        for prev, nxt in zip(chunks, chunks[1:]):
            assert 0 < prev.end - nxt.start <= overlap


@pytest.mark.parametrize(
    "size, overlap, problem",
    [
        (800, 200, None),
        (100, 0, None),
        (100, 99, None),
        (99, 0, "size must be at least 100"),
        (0, 0, "size must be at least 100"),
        (800, 800, "overlap must be smaller than size"),
        (800, 900, "overlap must be smaller than size"),
        (800, -1, "overlap must not be negative"),
        ("800", 200, "size must be an integer"),
        (800.0, 200, "size must be an integer"),
        (True, 0, "size must be an integer"),
        (800, None, "overlap must be an integer"),
    ],
)
def test_validate_chunking(size, overlap, problem):
    assert validate_chunking(size, overlap) == problem


def test_chunk_rejects_a_setting_validation_rejects():
    with pytest.raises(ValueError, match="size must be at least 100"):
        chunk("text", size=50, overlap=0)
    with pytest.raises(ValueError, match="overlap must be smaller than size"):
        chunk("text", size=100, overlap=100)
