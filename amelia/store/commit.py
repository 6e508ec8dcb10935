"""Group commit: records whose objects were written without fsync, made durable in batches.

A step's outputs go into the object store without an fsync each (two fsyncs per object
cost more than a trivial step itself); the record that points at them is handed here.
A writer thread takes every record waiting, fsyncs all their objects (each directory
once), then saves those records in one transaction. So a record is still written only
after its objects are durable, and steps do not wait for the disk: their dependents
need only the output hashes, which they have at once. If the process dies first, the
records still waiting are lost and those steps run again: never a record without its
objects.
"""

from __future__ import annotations

import queue
import threading


class GroupCommit:
    def __init__(self, objects, records):
        self.objects = objects
        self.records = records
        self._queue: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.error: BaseException | None = None

    def save(self, record) -> None:
        """Save `record` once the objects of its outputs are durable."""
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._write, name="amelia group commit", daemon=True)
                self._thread.start()
        self._queue.put(record)

    def _write(self) -> None:
        while True:
            batch = [self._queue.get()]
            while True:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            records = [r for r in batch if r is not None]
            try:
                if records and self.error is None:
                    self.objects.sync(d for r in records for d in r.outputs.values())
                    self.records.save_many(records)
            except BaseException as e:  # disk full, I/O error: reported by flush()
                self.error = e
            finally:
                for _ in batch:
                    self._queue.task_done()
            if None in batch:
                return

    def flush(self) -> None:
        """Wait until every record handed over is saved (or failed); stop the writer."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is None:
            return
        self._queue.put(None)
        thread.join()
