"""Make-format dependency files, as gcc -MMD / -MD and clang write them (ninja's `depfile`).

    build/main.o: src/main.c include/util.h \
      include/config\ file.h

Every rule's prerequisites are the dependencies; targets are ignored. `-MP` adds empty
rules (`include/util.h:`), which add nothing. Pure: text in, paths out.
"""

from __future__ import annotations


class DepfileError(ValueError):
    pass


def parse(text: str) -> list[str]:
    """The prerequisites named in the file, in order, each once."""
    deps: dict[str, None] = {}
    for lineno, line in _logical_lines(text):
        words = _words(line)
        if not words:
            continue
        colon = next((i for i, (w, raw_colon) in enumerate(words) if raw_colon), None)
        if colon is None:
            raise DepfileError(f"line {lineno}: no ':' after the target")
        for word, _ in words[colon + 1:]:
            if word:
                deps[word] = None
    return list(deps)


def _logical_lines(text: str):
    """(first line number, text) with backslash-newline continuations joined."""
    buf, start = [], 0
    for i, raw in enumerate(text.splitlines(), 1):
        if not buf:
            start = i
        if raw.endswith("\\") and not raw.endswith("\\\\"):
            buf.append(raw[:-1] + " ")
            continue
        buf.append(raw)
        yield start, "".join(buf)
        buf = []
    if buf:
        yield start, "".join(buf)


def _words(line: str) -> list:
    """(word, ends_target_list) pairs: words split on unescaped blanks; the word holding
    the rule's unescaped ':' is split there (its left part is a target)."""
    out: list = []
    cur: list = []
    i, n = 0, len(line)

    def flush(colon: bool = False):
        out.append(("".join(cur), colon))
        cur.clear()

    while i < n:
        c = line[i]
        if c == "\\" and i + 1 < n and line[i + 1] in " \t#:\\":
            cur.append(line[i + 1])
            i += 2
            continue
        if c == "$" and i + 1 < n and line[i + 1] == "$":
            cur.append("$")
            i += 2
            continue
        if c == "#" and not cur and (i == 0 or line[i - 1] in " \t"):
            break  # a comment
        if c in " \t":
            if cur:
                flush()
            i += 1
            continue
        if c == ":" and not any(colon for _, colon in out) and (i + 1 >= n or line[i + 1] in " \t"):
            flush(colon=True)
            i += 1
            continue
        cur.append(c)
        i += 1
    if cur:
        flush()
    # A target written with its colon as a separate word ("a.o : b.c").
    return [(w, colon) for w, colon in out if w or colon]
