"""`amelia chat`: an interactive terminal chat with a model of the pipeline, optionally
grounded in one of its RAG sources (answers cite the retrieved excerpts as [n]).

- `project.py`   the pipeline's models and sources, the checks made before the first prompt
- `grounding.py` retrieval for a turn, the excerpts in the prompt, the citations after it
- `history.py`   earlier turns sent with a prompt, trimmed from the oldest
- `loop.py`      the read–answer loop: streaming, slash commands, tokens and cost per turn
- `listing.py`   `amelia chat --list` (text and JSON)

Sessions live in state.db (store/chats.py). No click here: cli.py parses the flags.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class ChatOptions:
    file: str | None = None
    model: str | None = None  # a name under the pipeline's `models:`; None: the session's, or `default`
    source: str | None = None  # a name under `sources:`; None: the session's, or none
    session: str | None = None  # a session id or a unique prefix of one: resume it
    list: bool = False
    json: bool = False


def main(opts: ChatOptions, stdin=None, out=None, err=None) -> int:
    """Run `amelia chat`; the exit code. AmeliaErrors raised before the first prompt are
    the caller's to report (2: bad file, model, source or session; 4: environment)."""
    from .. import api
    from . import project

    # `amelia chat | head`: when the reader leaves, printing stops (no BrokenPipeError).
    stdin, out, err = stdin or sys.stdin, api.ReaderMayLeave(out or sys.stdout), err or sys.stderr

    if opts.list:
        from .listing import sessions_json, sessions_text

        rows = project.saved_sessions(opts.file)
        out.write(sessions_json(rows) if opts.json else sessions_text(rows))
        return 0
    setup = project.open_chat(opts)
    from .loop import Chat

    chat = Chat(setup, stdin, out, err)
    try:
        return chat.run()
    finally:
        chat.close()
