"""The embedded PostgreSQL used when no DATABASE_URL is configured.

`pgserver` ships real PostgreSQL binaries through pip; the data directory lives under instance/ and survives
restarts. Several processes may ask for the same directory: pgserver serialises start-up with a file lock and stops
the server when the last process holding it exits.
"""
from __future__ import annotations

import logging
import warnings
from pathlib import Path

log = logging.getLogger(__name__)


def embedded_database_url(data_dir: str) -> str:
    """Start (or join) the embedded server in `data_dir` and return its connection URL (a Unix socket)."""
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI); its /tmp fallback is fine here.
        warnings.simplefilter("ignore")
        import pgserver

        # pgserver narrates every pg_ctl call at INFO, including from atexit after logging has shut down.
        logging.getLogger("pgserver").setLevel(logging.WARNING)

        path = Path(data_dir)
        path.parent.mkdir(parents=True, exist_ok=True)
        server = pgserver.get_server(path, cleanup_mode="stop")
    url = server.get_uri()
    log.info("embedded PostgreSQL ready", extra={"data_dir": str(path)})
    return url
