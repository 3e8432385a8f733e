"""Copying SQLite's write-ahead log back into the database file, off the event loop.

SQLite's automatic checkpoint runs inside the commit that crosses its threshold, so on
deputy's event loop: every few dozen creates, one request's commit also copies megabytes of
pages and fsyncs the file, and every request behind it waits. Instead, writer connections keep
only a distant safety net (``SAFETY_NET_PAGES``) and a thread of our own runs a PASSIVE
checkpoint shortly after commits. A PASSIVE checkpoint never blocks readers or writers, and
sqlite3 releases the GIL while it copies, so the copying happens on another core.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time

logger = logging.getLogger("deputy.db")

#: Writer connections still checkpoint by themselves past this many WAL pages (~40 MB with
#: 4 KiB pages), in case this thread cannot keep up or is not running (e.g. ``deputy db``).
SAFETY_NET_PAGES = 10_000
#: How long the thread lets commits accumulate before copying them (one copy, one fsync).
LINGER_SECONDS = 0.05


class Checkpointer:
    """A daemon thread checkpointing one SQLite file after commits (started on the first)."""

    def __init__(self, path: str, busy_timeout_ms: int) -> None:
        self._path = path
        self._busy_timeout_ms = busy_timeout_ms
        self._committed = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None

    def committed(self) -> None:
        """Called after each commit: a checkpoint will follow shortly."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="deputy-checkpoint", daemon=True)
            self._thread.start()
        self._committed.set()

    def stop(self) -> None:
        """Checkpoint what is left and end the thread."""
        if self._thread is None:
            return
        self._stopping = True
        self._committed.set()
        self._thread.join()
        self._thread = None

    def _run(self) -> None:
        connection = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        connection.execute(f"PRAGMA busy_timeout={self._busy_timeout_ms}")
        try:
            while not self._stopping:
                self._committed.wait()
                if not self._stopping:
                    time.sleep(LINGER_SECONDS)
                self._committed.clear()
                self._checkpoint(connection)
        finally:
            connection.close()

    @staticmethod
    def _checkpoint(connection: sqlite3.Connection) -> None:
        try:
            connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error:
            logger.debug("WAL checkpoint skipped", exc_info=True)
