"""`amelia watch` (DESIGN §6): run the pipeline, then again on every save, only what the
save made stale; a save during a run stops and restarts the steps it invalidates.

paths.py: what is watched and what a change means (pure); debounce.py: a burst of saves is
one run (pure); notify.py: the watcher thread (watchfiles); session.py: the controller.
"""

from __future__ import annotations


def main(opts, stream=None) -> int:
    """Watch until Ctrl-C (130) or SIGTERM (143); AmeliaError for a start that cannot be."""
    from ..reporters.watch_view import make_view
    from .session import Session

    return Session(opts, make_view(opts.json, opts.verbose, stream)).main()
