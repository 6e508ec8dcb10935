"""Chat sessions in state.db (`amelia chat`): sessions and their messages.

A session has a short id a person can type (`amelia chat --session k3m9`), the model and
source it last used, and a title (its first message). Messages are numbered from 1 within
their session; each assistant message carries its call's tokens and cost. Nothing secret
is kept: no keys, and message text is redacted by the caller before it gets here.
Like run history, sessions are local to the project and `cache clear` keeps them.
"""

from __future__ import annotations

import os
import time
from collections import namedtuple

from .history import MAX_LIMIT

# Lower-case letters and digits without the ones people confuse (0/o, 1/l/i).
ID_ALPHABET = "23456789abcdefghjkmnpqrstuvwxyz"
ID_LENGTH = 6
TITLE_CHARS = 80


class ChatMessage(namedtuple("ChatMessage", "role content model input_tokens output_tokens cost time",
                             defaults=("", None, None, None, None))):
    """One message. role: user | assistant. model: the model name that answered (assistant)."""

    __slots__ = ()


_SESSION_COLUMNS = ("id", "created", "updated", "model", "source", "title")


def new_id(rand=os.urandom) -> str:
    return "".join(ID_ALPHABET[b % len(ID_ALPHABET)] for b in rand(ID_LENGTH))


def title_of(text: str) -> str:
    """The first message, on one line and cut: what `--list` shows."""
    line = " ".join(text.split())
    return line if len(line) <= TITLE_CHARS else line[:TITLE_CHARS - 1] + "…"


class Chats:
    """Tables chat_sessions and chat_messages (schema 5)."""

    def __init__(self, db):
        self._db = db  # StateDB: the shared connection, its lock and transaction()

    # -- writing ---------------------------------------------------------------------
    def unused_id(self) -> str:
        """A new session id no session has (6 of 31 characters: collisions are rare)."""
        with self._db.reading() as conn:
            while True:
                sid = new_id()
                if conn.execute("SELECT 1 FROM chat_sessions WHERE id=?", (sid,)).fetchone() is None:
                    return sid

    def save_turn(self, session: str, model: str, source: str, messages) -> None:
        """Append messages (ChatMessage) to a session, creating it at its first turn (its title
        is the first user message); the session's model and source become these. One
        transaction: a turn is kept whole or not at all."""
        now = time.time()
        messages = list(messages)
        with self._db.transaction() as conn:
            first = next((m.content for m in messages if m.role == "user"), "")
            conn.execute("INSERT OR IGNORE INTO chat_sessions VALUES (?,?,?,?,?,?)",
                         (session, now, now, model, source or "", title_of(first)))
            conn.execute("UPDATE chat_sessions SET updated=?, model=?, source=? WHERE id=?",
                         (now, model, source or "", session))
            seq = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM chat_messages WHERE session=?",
                               (session,)).fetchone()[0]
            conn.executemany(
                "INSERT INTO chat_messages VALUES (?,?,?,?,?,?,?,?,?)",
                [(session, seq + i, m.role, m.content, m.model, m.input_tokens, m.output_tokens,
                  m.cost, m.time if m.time is not None else now)
                 for i, m in enumerate(messages, 1)])

    # -- reading ---------------------------------------------------------------------
    def sessions(self, limit: int = MAX_LIMIT) -> list[dict]:
        """The sessions most recently used first, each a dict: id, created, updated, model,
        source, title, turns (user messages), input_tokens, output_tokens, cost (None when
        some answer's cost is unknown)."""
        limit = min(max(limit, 0), MAX_LIMIT)
        with self._db.reading() as conn:
            rows = conn.execute(
                "SELECT s.id, s.created, s.updated, s.model, s.source, s.title, "
                "SUM(m.role='user'), SUM(m.input_tokens), SUM(m.output_tokens), SUM(m.cost), "
                "SUM(m.role='assistant' AND m.cost IS NULL) "
                "FROM chat_sessions s LEFT JOIN chat_messages m ON m.session = s.id "
                "GROUP BY s.id ORDER BY s.updated DESC, s.created DESC LIMIT ?", (limit,)).fetchall()
        return [dict(zip(_SESSION_COLUMNS, r[:6]), turns=r[6] or 0, input_tokens=r[7] or 0,
                     output_tokens=r[8] or 0, cost=None if r[10] else (r[9] or 0.0))
                for r in rows]

    def matching(self, prefix: str) -> list[str]:
        """Ids of the sessions starting with prefix (an id is its own unique prefix)."""
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        with self._db.reading() as conn:
            return [r[0] for r in conn.execute(
                "SELECT id FROM chat_sessions WHERE id LIKE ? ESCAPE '\\' ORDER BY id",
                (escaped + "%",))]

    def session(self, session: str) -> dict | None:
        with self._db.reading() as conn:
            row = conn.execute(f"SELECT {', '.join(_SESSION_COLUMNS)} FROM chat_sessions WHERE id=?",
                               (session,)).fetchone()
        return dict(zip(_SESSION_COLUMNS, row)) if row else None

    def messages(self, session: str) -> list[ChatMessage]:
        """A session's messages in order."""
        with self._db.reading() as conn:
            rows = conn.execute(
                "SELECT role, content, model, input_tokens, output_tokens, cost, time "
                "FROM chat_messages WHERE session=? ORDER BY seq", (session,)).fetchall()
        return [ChatMessage(*r) for r in rows]
