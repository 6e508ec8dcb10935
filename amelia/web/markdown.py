"""Markdown from a model or a step, as safe HTML (markdown-it-py, installed with rich).

Raw HTML in the text is shown as text, never interpreted; images are not rendered (an
image would be a request when the page opens: the report makes none), their syntax
stays a link; a link's target may only be http, https, mailto or a #fragment. Its
headings sit below the page's (an output is shown under an <h4>): `# T` is
`<h5 class="md-h1">`, deeper ones <h6>, so the page's outline stays the page's.
"""

from __future__ import annotations

ALLOWED_LINKS = ("http://", "https://", "mailto:", "#")
HEADING_SHIFT = 4
_MD: list = []  # the parser, made once


def _validate(url: str) -> bool:
    return url.strip().lower().startswith(ALLOWED_LINKS)


def _parser():
    if not _MD:
        from markdown_it import MarkdownIt

        md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
        md.enable(["table", "strikethrough"])
        md.disable("image")
        md.validateLink = _validate

        def link_open(self, tokens, idx, options, env):
            tokens[idx].attrSet("rel", "noopener noreferrer nofollow")
            return self.renderToken(tokens, idx, options, env)

        def heading(self, tokens, idx, options, env):
            token = tokens[idx]
            level = int(token.tag[1])
            token.tag = f"h{min(level + HEADING_SHIFT, 6)}"
            if token.nesting == 1:
                token.attrSet("class", f"md-h{level}")
            return self.renderToken(tokens, idx, options, env)

        md.add_render_rule("link_open", link_open)
        md.add_render_rule("heading_open", heading)
        md.add_render_rule("heading_close", heading)
        _MD.append(md)
    return _MD[0]


def render(text: str) -> str:
    """`text` (markdown) as HTML: no raw HTML, no image, only safe link targets."""
    return _parser().render(text)
