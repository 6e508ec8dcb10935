"""`${{ ref }}` templates: dotted references only, no code is ever evaluated."""

from __future__ import annotations

import re

_TEMPLATE = re.compile(r"\$\{\{(.*?)\}\}", re.S)
_DOTTED = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*(\.[A-Za-z_][A-Za-z0-9_-]*)*$")
ROOTS = ("params", "steps", "context", "env", "name", "item")


class TemplateSyntaxError(ValueError):
    def __init__(self, message: str, offset: int, hint: str = "", source: str = ""):
        super().__init__(message)
        self.offset = offset
        self.hint = hint
        self.source = source  # the template as written, to find it in the file


def scan(text: str) -> tuple[list[tuple[str, int, str]], list[TemplateSyntaxError]]:
    """Every reference in `text` as (ref, offset, source), and every syntax error.

    `source` is the template as written (e.g. '${{ params.goal }}'), for locating it.
    """
    refs, errors = [], []
    end = 0
    for m in _TEMPLATE.finditer(text):
        end = m.end()
        ref = m.group(1).strip()
        if not ref:
            errors.append(TemplateSyntaxError("empty template ${{ }}", m.start(),
                                              "put a reference inside, like ${{ params.goal }}", m.group(0)))
            continue
        if not _DOTTED.match(ref):
            errors.append(TemplateSyntaxError(
                f"'{ref}' is not a reference",
                m.start(),
                "templates hold dotted references only, like ${{ params.goal }}; no code runs",
                m.group(0),
            ))
            continue
        refs.append((ref, m.start(), m.group(0)))
    unclosed = text.find("${{", end)
    if unclosed != -1:
        errors.append(TemplateSyntaxError("unclosed template: '${{' without '}}'", unclosed,
                                          "end it with '}}'", "${{"))
    return refs, errors


def references(text: str) -> list[tuple[str, int]]:
    """Every reference in `text` with its offset; raises the first TemplateSyntaxError."""
    refs, errors = scan(text)
    if errors:
        raise min(errors, key=lambda e: e.offset)
    return [(ref, offset) for ref, offset, _ in refs]


def substitute(text: str, value_of) -> str:
    """Replace each reference by value_of(ref)."""
    return _TEMPLATE.sub(lambda m: value_of(m.group(1).strip()), text)


def blank(text: str, ref: str) -> str:
    """`text` with each `${{ ref }}` replaced by as many spaces: the offsets of the other
    references (for messages) stay where they were."""
    return _TEMPLATE.sub(lambda m: " " * len(m.group(0)) if m.group(1).strip() == ref else m.group(0), text)


def env_name(ref: str) -> str:
    """The environment variable that carries a reference into a command."""
    parts = ref.split(".")
    if parts[0] == "env":
        return parts[1]
    if parts[0] == "name":
        return "AMELIA_PIPELINE_NAME"
    head = {"params": "PARAM", "steps": "STEP"}.get(parts[0], parts[0].upper())
    return re.sub(r"[^A-Za-z0-9_]", "_", "_".join(["AMELIA", head, *parts[1:]])).upper()
