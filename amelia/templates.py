"""`${{ ref }}` templates: dotted references only, no code is ever evaluated."""

from __future__ import annotations

import re

_TEMPLATE = re.compile(r"\$\{\{(.*?)\}\}", re.S)
_DOTTED = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*(\.[A-Za-z_][A-Za-z0-9_-]*)*$")
ROOTS = ("params", "steps", "context", "env", "name")


class TemplateSyntaxError(ValueError):
    def __init__(self, message: str, offset: int, hint: str = ""):
        super().__init__(message)
        self.offset = offset
        self.hint = hint


def references(text: str) -> list[tuple[str, int]]:
    """Every reference in `text` with its offset; raises TemplateSyntaxError."""
    out = []
    for m in _TEMPLATE.finditer(text):
        ref = m.group(1).strip()
        if not ref:
            raise TemplateSyntaxError("empty template ${{ }}", m.start())
        if not _DOTTED.match(ref):
            raise TemplateSyntaxError(
                f"'{ref}' is not a reference",
                m.start(),
                "templates hold dotted references only, like ${{ params.goal }}; no code runs",
            )
        out.append((ref, m.start()))
    unclosed = text.find("${{", out_end(text))
    if unclosed != -1:
        raise TemplateSyntaxError("unclosed template: '${{' without '}}'", unclosed)
    return out


def out_end(text: str) -> int:
    last = None
    for last in _TEMPLATE.finditer(text):
        pass
    return last.end() if last else 0


def substitute(text: str, value_of) -> str:
    """Replace each reference by value_of(ref)."""
    return _TEMPLATE.sub(lambda m: value_of(m.group(1).strip()), text)


def env_name(ref: str) -> str:
    """The environment variable that carries a reference into a command."""
    parts = ref.split(".")
    if parts[0] == "env":
        return parts[1]
    if parts[0] == "name":
        return "AMELIA_PIPELINE_NAME"
    head = {"params": "PARAM", "steps": "STEP"}.get(parts[0], parts[0].upper())
    rest = "_".join(parts[1:])
    return re.sub(r"[^A-Za-z0-9_]", "_", f"AMELIA_{head}_{rest}").upper()
