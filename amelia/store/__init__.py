"""The project store, .amelia/ at the project root (DESIGN §3).

Its parts, each behind a narrow interface:

- `objects`    objects by hash               (objects.ObjectStore; seam interfaces.ContentStore)
- `records`    step records by cache key     (records.Records;     seam interfaces.RecordStore)
- `history`    runs, their steps (StepRow), model usage (UsageRow), events (EventRow)
- `memo`       the file-state memo           (memo.FileStateMemo)
- `pipelines`  resolved pipelines by digest  (memo.PipelineMemo)
- `lock`       one writer per project        (lock.ProjectLock)

`state` is the SQLite database behind records, history and the memos; code outside
the store uses the parts above and never SQL. A store that cannot be used (damaged,
read-only, full disk) raises errors.StoreProblem naming the file (problems.py).
"""

from __future__ import annotations

import os

from .history import EventRow, StepRow, UsageRow
from .lock import ProjectLock
from .objects import ObjectStore
from .records import Record, RecordHead
from .state import StateDB

STORE_DIR = ".amelia"

__all__ = ["STORE_DIR", "EventRow", "ObjectStore", "ProjectLock", "Record", "RecordHead", "StateDB",
           "StepRow", "Store", "UsageRow", "exists"]


class Store:
    def __init__(self, root: str):
        self.root = root
        self.dir = os.path.join(root, STORE_DIR)
        if not os.path.isdir(self.dir):
            try:
                os.makedirs(self.dir, exist_ok=True)
                with open(os.path.join(self.dir, ".gitignore"), "w") as f:
                    f.write("# amelia's store: cache, run history, logs\n*\n")
            except OSError as e:
                from .problems import os_problem

                raise os_problem(e.filename or self.dir, e) from e
        self.objects = ObjectStore(os.path.join(self.dir, "objects"))
        self.state = StateDB(os.path.join(self.dir, "state.db"))
        self.records = self.state.records
        self.history = self.state.history
        self.memo = self.state.memo
        self.pipelines = self.state.pipelines
        self.lock = ProjectLock(os.path.join(self.dir, "lock"))

    @staticmethod
    def log_name(step_id: str) -> str:
        """A step's log file name: its id, with '/' (a foreach item's path) and '%' escaped."""
        return step_id.replace("%", "%25").replace("/", "%2F") + ".log"

    def logs_dir(self, run_id: str) -> str:
        d = os.path.join(self.dir, "logs", run_id)
        try:
            os.makedirs(d, exist_ok=True)
        except OSError as e:
            from .problems import os_problem

            raise os_problem(d, e) from e
        return d

    def integrity(self) -> str:
        """"ok", or what is damaged in state.db (objects: `objects.verify()`)."""
        return self.state.integrity_check()

    def clear_cache(self) -> None:
        """Forget every cached result: records, memos and objects; run history is kept."""
        self.state.clear()
        self.objects.clear()

    def close(self) -> None:
        self.lock.release()
        self.state.close()


def exists(root: str) -> bool:
    return os.path.isdir(os.path.join(root, STORE_DIR))
