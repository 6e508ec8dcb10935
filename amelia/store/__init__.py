"""The project store, .amelia/ at the project root (DESIGN §3)."""

from __future__ import annotations

import os

from .lock import ProjectLock
from .objects import ObjectStore
from .state import StateDB

STORE_DIR = ".amelia"


class Store:
    def __init__(self, root: str):
        self.root = root
        self.dir = os.path.join(root, STORE_DIR)
        if not os.path.isdir(self.dir):
            os.makedirs(self.dir, exist_ok=True)
            with open(os.path.join(self.dir, ".gitignore"), "w") as f:
                f.write("# amelia's store: cache, run history, logs\n*\n")
        self.objects = ObjectStore(os.path.join(self.dir, "objects"))
        self.state = StateDB(os.path.join(self.dir, "state.db"))
        self.lock = ProjectLock(os.path.join(self.dir, "lock"))

    def logs_dir(self, run_id: str) -> str:
        d = os.path.join(self.dir, "logs", run_id)
        os.makedirs(d, exist_ok=True)
        return d

    def close(self) -> None:
        self.lock.release()
        self.state.close()


def exists(root: str) -> bool:
    return os.path.isdir(os.path.join(root, STORE_DIR))
