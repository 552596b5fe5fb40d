"""RPO markers: timestamped writes the drill makes on the primary before and during the switch.

The writer inserts ``(drill, seq)`` rows into ``dr_markers`` on the primary every ``interval`` seconds
(autocommit: a row counts as acknowledged once the primary answered the INSERT with its
``clock_timestamp()``). After the DR side (or the test drill's copy) takes over, the newest row of this
drill visible there is read. The RPO is the time between the last write the primary acknowledged before
the cut-off and that newest row — zero when every acknowledged write arrived.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

CREATE = ("CREATE TABLE IF NOT EXISTS dr_markers (drill integer NOT NULL, seq integer NOT NULL, "
          "written_at timestamptz NOT NULL DEFAULT clock_timestamp(), PRIMARY KEY (drill, seq))")


@dataclass
class Ack:
    seq: int
    at: dt.datetime


@dataclass
class MarkerWriter:
    dsn: str
    drill_id: int
    interval: float = 0.1
    acks: list[Ack] = field(default_factory=list)
    attempts: int = 0
    failures: int = 0
    last_error: str = ""

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._conn: Any = None

    def prepare(self) -> None:
        """Create the table and drop this drill's old rows; raises if the primary is not reachable."""
        import psycopg

        with psycopg.connect(self.dsn, connect_timeout=3, autocommit=True) as conn:
            conn.execute(CREATE)
            conn.execute("DELETE FROM dr_markers WHERE drill = %s", (self.drill_id,))

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name=f"dr-markers-{self.drill_id}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Idempotent."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._close()

    def _close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:
                pass
            self._conn = None

    def _loop(self) -> None:
        import psycopg

        seq = 0
        while not self._stop.wait(self.interval):
            seq += 1
            self.attempts += 1
            try:
                if self._conn is None:
                    self._conn = psycopg.connect(self.dsn, connect_timeout=1, autocommit=True,
                                                 options="-c statement_timeout=1000")
                row = self._conn.execute("INSERT INTO dr_markers (drill, seq) VALUES (%s, %s) RETURNING written_at",
                                         (self.drill_id, seq)).fetchone()
                self.acks.append(Ack(seq, row[0].astimezone(dt.UTC)))
            except Exception as exc:  # the primary is being fenced or is gone: not acknowledged
                self.failures += 1
                self.last_error = f"{type(exc).__name__}: {str(exc).strip()[:200]}"
                self._close()
                self._stop.wait(0.2)

    def last_ack_before(self, cutoff: dt.datetime) -> Ack | None:
        before = [a for a in self.acks if a.at <= cutoff]
        return before[-1] if before else None


def newest_marker(dsn: str, drill_id: int) -> tuple[int, dt.datetime] | None:
    """The newest marker row of the drill visible through ``dsn`` (the DR side after takeover)."""
    import psycopg

    with psycopg.connect(dsn, connect_timeout=3, autocommit=True) as conn:
        row = conn.execute("SELECT seq, written_at FROM dr_markers WHERE drill = %s ORDER BY seq DESC LIMIT 1",
                           (drill_id,)).fetchone()
    return (int(row[0]), row[1].astimezone(dt.UTC)) if row else None


def rpo_from(last_ack: Ack | None, newest: tuple[int, dt.datetime] | None, first_at: dt.datetime | None
             ) -> float | None:
    """Seconds of acknowledged writes missing at the DR side (0 when all arrived); None without evidence."""
    if last_ack is None:
        return None
    if newest is not None and newest[0] >= last_ack.seq:
        return 0.0
    since = newest[1] if newest is not None else (first_at or last_ack.at)
    return max(0.0, round((last_ack.at - since).total_seconds(), 3))
