"""`amelia ui [FILE] [--host H] [--port P]`: serve the command center until Ctrl-C.

The server runs on a thread of this process (amelia.web.server.UiServer); the main thread
waits, so Ctrl-C and SIGTERM (entry.Terminated) arrive here as KeyboardInterrupt: the run
going is cancelled, the server stops, and the exit is 130 (143 for SIGTERM).
"""

from __future__ import annotations

import os
import sys

from .errors import EXIT_INTERRUPTED, EXIT_TERMINATED

DEFAULT_PORT = 8765
DEFAULT_HOST = "127.0.0.1"


def project_root(file: str | None) -> tuple:
    """(root, the pipeline file to show first or None): FILE's project, else the one here."""
    from . import api
    from .errors import UsageError
    from .paths import find_root

    if file:
        if not os.path.isfile(file):
            raise UsageError(f"no file {file!r}", hint="pass a pipeline file, or none for amelia.yaml here")
        return find_root(file), os.path.abspath(file)
    here = api.DEFAULT_FILE if os.path.exists(api.DEFAULT_FILE) else None
    return find_root(os.path.join(os.getcwd(), api.DEFAULT_FILE)), (os.path.abspath(here) if here else None)


def serve(file: str | None, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, jobs: int = 0,
          out=None, err=None) -> int:
    from .web.project import UiProject
    from .web.server import LOOPBACK, UiServer

    out = out or sys.stdout
    err = err or sys.stderr
    root, first = project_root(file)
    project = UiProject(root, first)
    server = None
    try:
        server = UiServer(project, host, port, jobs)
        if host.strip("[]").lower() not in LOOPBACK:
            err.write(f"amelia ui: warning: listening on {host}, not only this machine: anyone who can "
                      f"reach it can read this project's runs and outputs (starting a run needs the "
                      f"page's token)\n")
        server.start()
        out.write(f"amelia ui: serving {root} at {server.url}  (Ctrl-C to stop)\n")
        out.flush()
        while server.alive():
            server.thread.join(0.5)
        if server.error is not None:
            from .errors import EnvironmentProblem

            raise EnvironmentProblem(f"the ui server stopped: {server.error}")
        return 0
    except KeyboardInterrupt as e:
        from .entry import Terminated

        err.write("amelia ui: stopped\n")
        return EXIT_TERMINATED if isinstance(e, Terminated) else EXIT_INTERRUPTED
    finally:
        if server is not None:
            server.stop()
        project.close()
