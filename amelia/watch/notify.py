"""The file watcher: watchfiles' Rust watcher (inotify on Linux) over a list of directories,
on one thread, each batch of changes handed to a sink.

One watcher over explicit directories (each watched alone) rather than a recursive one:
a deep directory's subdirectories are listed here, so .amelia/ and .git/ (busy during a
run) are never watched. A directory that appears where one is wanted is added at once
(the watcher is made again) and the files already in it are reported as added, so nothing
created in between is missed.
"""

from __future__ import annotations

import os
import threading

from .paths import ADDED, WatchSet, _rel

STEP_MS = 10  # how often the watcher looks at what the OS reported; also the idle wake-up


class Watcher:
    def __init__(self, sink, step_ms: int = STEP_MS):
        self.sink = sink  # called on the watcher's thread with a set of (change, absolute path)
        self.step_ms = step_ms
        self._lock = threading.Lock()
        self._next: WatchSet | None = None
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.ready = threading.Event()  # set once the first directories are watched
        self.error: Exception | None = None

    def watch(self, wanted: WatchSet) -> None:
        """Watch these directories from now on (the watcher is made again only if they differ)."""
        with self._lock:
            self._next = wanted
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="amelia-watch", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 1.0) -> None:
        self._stopping = True
        if self._thread is not None:
            self._thread.join(timeout)

    def is_set(self) -> bool:
        """The Rust watcher's stop check, made every step: stop, or new directories to watch."""
        return self._stopping or self._next is not None

    def _loop(self) -> None:
        from watchfiles._rust_notify import RustNotify

        notify, dirs, wanted = None, (), None
        try:
            while not self._stopping:
                if self._next is not None:
                    with self._lock:
                        new, self._next = self._next, None
                    if new != wanted:
                        wanted = new
                        found = new.dirs()
                        if found != dirs:
                            if notify is not None:
                                notify.close()
                            notify = RustNotify(found, False, False, 50, False, True)
                            dirs = found
                    self.ready.set()
                result = notify.watch(self.step_ms, self.step_ms, 0, self)
                if not isinstance(result, set):
                    continue  # stopped, or new directories to watch
                appeared = [p for change, p in result if change == ADDED and os.path.isdir(p)
                            and wanted.wants_new_dir(_rel(wanted.root, p) or "")]
                if appeared:
                    found = wanted.dirs()
                    notify.close()
                    notify = RustNotify(found, False, False, 50, False, True)
                    dirs = found
                    result = set(result) | _files_in(appeared)  # made before the watch began
                self.sink(result)
        except Exception as e:  # a watcher that died: said, and the session stops
            self.error = e
            self.ready.set()
            self.sink(None)
        finally:
            if notify is not None:
                notify.close()


def _files_in(dirs) -> set:
    out = set()
    for top in dirs:
        for d, subdirs, files in os.walk(top):
            subdirs[:] = [s for s in subdirs if s not in (".amelia", ".git")]
            out.update((ADDED, os.path.join(d, f)) for f in files)
    return out
