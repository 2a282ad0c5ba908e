"""Embedded mode's broker: a durable kombu transport on one SQLite file, and its books.

kombu's own local transports lose what a consumer holds when it dies: the filesystem
transport deletes a message's file when it is read, and the SQLAlchemy transport marks the row
invisible and never shows it again (and re-inserts a copy at a clean shutdown). Here a message
stays in its row until it is acknowledged: taking it writes the consumer's process id into the
row (a lease), an acknowledgement deletes the row, a requeue or a consumer's clean close clears
the lease, and the leases of processes that no longer run are cleared by `release_orphans`
(the supervisor calls it at start-up and whenever a worker process ends). So a job accepted
before a SIGKILL or SIGTERM is delivered again after the restart.

The shadow queue is bounded: a publish past `bounds[queue]` waiting or running jobs raises
`QueueFull`. Jobs dropped before they reached the file are counted in its `dropped` table
(per minute, use case and reason), which outlives the process's Prometheus counters.

Writes use WAL with `synchronous=NORMAL`: a committed row survives the process being killed
(only a power loss can take the last transactions), at a few tens of microseconds per job.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from queue import Empty
from typing import Any, cast

import orjson
from kombu.transport import TRANSPORT_ALIASES, virtual

SCHEME = "switchover-queue"
TRANSPORT_ALIASES[SCHEME] = "shadow.localqueue:Transport"

_TABLES = (
    """CREATE TABLE IF NOT EXISTS messages (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        queue TEXT NOT NULL,
        tag TEXT NOT NULL UNIQUE,
        payload TEXT NOT NULL,
        owner INTEGER,
        enqueued_at REAL NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS messages_waiting ON messages (queue, owner, id)",
    """CREATE TABLE IF NOT EXISTS workers (
        pid INTEGER PRIMARY KEY,
        beat_at REAL NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS dropped (
        minute TEXT NOT NULL,
        use_case TEXT NOT NULL,
        reason TEXT NOT NULL,
        jobs INTEGER NOT NULL,
        PRIMARY KEY (minute, use_case, reason)
    )""",
)
# Jobs per queue, kept by triggers in the same transaction as each insert and delete: the
# bound is checked with one key lookup instead of counting the rows (390 us at 10,000).
_LENGTHS = (
    "CREATE TABLE lengths (queue TEXT PRIMARY KEY, jobs INTEGER NOT NULL)",
    """CREATE TRIGGER messages_counted AFTER INSERT ON messages BEGIN
        INSERT INTO lengths (queue, jobs) VALUES (NEW.queue, 1)
        ON CONFLICT (queue) DO UPDATE SET jobs = jobs + 1;
    END""",
    """CREATE TRIGGER messages_uncounted AFTER DELETE ON messages BEGIN
        UPDATE lengths SET jobs = jobs - 1 WHERE queue = OLD.queue;
    END""",
    # a file written before the triggers existed: count what it holds once
    "INSERT INTO lengths (queue, jobs) SELECT queue, COUNT(*) FROM messages GROUP BY queue",
)
# Insert a job only while its queue holds fewer than the bound: check and insert in one
# statement, so proxies in several processes never overshoot it together.
_BOUNDED_INSERT = """
INSERT INTO messages (queue, tag, payload, enqueued_at)
SELECT ?, ?, ?, ? WHERE COALESCE((SELECT jobs FROM lengths WHERE queue = ?), 0) < ?
"""


class QueueFull(Exception):
    """The local queue holds as many shadow jobs as it may; this one is dropped."""

    drop_reason = "queue_full"


def connect(path: Path | str) -> sqlite3.Connection:
    """A connection to the queue file (created with its tables when missing)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(
        str(path), timeout=30, isolation_level=None, check_same_thread=False
    )
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute("PRAGMA busy_timeout=30000")
    connection.execute("BEGIN IMMEDIATE")  # one process at a time creates what is missing
    try:
        for statement in _TABLES:
            connection.execute(statement)
        counted = connection.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'lengths'"
        ).fetchone()
        if counted is None:
            for statement in _LENGTHS:
                connection.execute(statement)
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    return connection


def _alive(pid: int) -> bool:
    """Whether `pid` is a running process: a zombie has exited and holds nothing.

    A worker killed with its supervisor is re-parented to PID 1, and a container's PID 1 that
    does not reap leaves it a zombie: `kill(pid, 0)` still succeeds on it, so its state is read
    from /proc (proc(5), field 3 of /proc/PID/stat; 'Z' zombie, 'X' dead) where there is one.
    """
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return not Path("/proc/self/stat").exists()
    except OSError:
        return True
    # the name (field 2) is in parentheses and may hold spaces: the state follows the last ')'
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")


class LocalQueue:
    """The queue file seen from outside kombu: leases to clear, drops to record, counts."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._opened: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    @property
    def _connection(self) -> sqlite3.Connection:
        # opened on first use: an app that never drops or asks for workers makes no file
        if self._opened is None:
            self._opened = connect(self.path)
        return self._opened

    def release_orphans(self, pids: Iterable[int] | None = None) -> int:
        """Give back the jobs held by `pids` (default: by any process no longer running)."""
        with self._lock:
            owners = [
                row[0]
                for row in self._connection.execute(
                    "SELECT DISTINCT owner FROM messages WHERE owner IS NOT NULL"
                )
            ]
            dead = set(pids) & set(owners) if pids is not None else set()
            if pids is None:
                dead = {owner for owner in owners if owner == os.getpid() or not _alive(owner)}
            released = 0
            for owner in dead:
                cursor = self._connection.execute(
                    "UPDATE messages SET owner = NULL WHERE owner = ?", (owner,)
                )
                released += cursor.rowcount
            return released

    def record_dropped(self, counts: dict[tuple[str, str], int]) -> None:
        """Add jobs dropped this minute, by (use case, reason), to the `dropped` table."""
        minute = time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime())
        with self._lock:
            self._connection.executemany(
                "INSERT INTO dropped (minute, use_case, reason, jobs) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (minute, use_case, reason) DO UPDATE SET jobs = jobs + excluded.jobs",
                [(minute, use_case, reason, n) for (use_case, reason), n in counts.items()],
            )

    def dropped(self) -> dict[tuple[str, str], int]:
        """Jobs dropped over the file's life, by (use case, reason)."""
        with self._lock:
            rows = self._connection.execute(
                "SELECT use_case, reason, SUM(jobs) FROM dropped GROUP BY use_case, reason"
            ).fetchall()
        return {(use_case, reason): int(n) for use_case, reason, n in rows}

    def beat(self, pid: int) -> None:
        """A worker process consuming from the file is alive right now."""
        with self._lock:
            self._connection.execute(
                "INSERT INTO workers (pid, beat_at) VALUES (?, ?) "
                "ON CONFLICT (pid) DO UPDATE SET beat_at = excluded.beat_at",
                (pid, time.time()),
            )

    def gone(self, pid: int) -> None:
        """A worker process stopped consuming."""
        with self._lock:
            self._connection.execute("DELETE FROM workers WHERE pid = ?", (pid,))

    def workers_alive(self, within_s: float = 15.0) -> int:
        """Worker processes that consumed within `within_s` seconds and still run."""
        with self._lock:
            rows = self._connection.execute(
                "SELECT pid FROM workers WHERE beat_at >= ?", (time.time() - within_s,)
            ).fetchall()
        return sum(1 for (pid,) in rows if _alive(pid))

    def waiting(self, queue: str | None = None) -> int:
        """Jobs in the file (waiting or held by a worker), in `queue` or in all."""
        with self._lock:
            if queue is None:
                row = self._connection.execute("SELECT COUNT(*) FROM messages").fetchone()
            else:
                row = self._connection.execute(
                    "SELECT COUNT(*) FROM messages WHERE queue = ?", (queue,)
                ).fetchone()
        return int(row[0])

    def close(self) -> None:
        """Close the connection."""
        if self._opened is not None:
            self._opened.close()
            self._opened = None


class QoS(virtual.QoS):
    """Acknowledging deletes the row, requeueing clears its lease; both in the file."""

    def ack(self, delivery_tag: str) -> None:
        cast(Channel, self.channel)._remove(delivery_tag)
        super().ack(delivery_tag)

    def reject(self, delivery_tag: str, requeue: bool = False) -> None:
        channel = cast(Channel, self.channel)
        if requeue:
            channel._release(delivery_tag)
        else:
            channel._remove(delivery_tag)
        # forget it here without kombu's re-publish of a requeued message: the row is there
        virtual.QoS.ack(self, delivery_tag)


class Channel(virtual.Channel):
    """A kombu channel whose queues are rows of the SQLite file."""

    QoS = QoS
    do_restore = True

    def __init__(self, connection: Any, **kwargs: Any) -> None:
        super().__init__(connection, **kwargs)
        options = connection.client.transport_options
        self._db = connect(options["path"])
        # reentrant: the statements of a `batch` run while it holds the lock
        self._db_lock = threading.RLock()
        self._bounds: dict[str, int] = dict(options.get("bounds") or {})

    def _execute(self, sql: str, args: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        with self._db_lock:
            return self._db.execute(sql, args)

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Publish several jobs in one transaction: all of them are in the file, or none.

        One commit (and one taking of the file's write lock) for the lot instead of one per
        job. A job refused at its queue's bound raises QueueFull inside and leaves the others
        in; any other error rolls every one of them back.
        """
        with self._db_lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def full(self, queue: str) -> bool:
        """Whether a bounded `queue` holds its bound: a publisher's cheap check before it
        builds a message (the insert itself is what enforces the bound)."""
        bound = self._bounds.get(queue)
        if bound is None:
            return False
        row = self._execute("SELECT jobs FROM lengths WHERE queue = ?", (queue,)).fetchone()
        return row is not None and int(row[0]) >= bound

    def _put(self, queue: str, message: dict[str, Any], **kwargs: Any) -> None:
        payload = orjson.dumps(message).decode()
        row = (queue, message["properties"]["delivery_tag"], payload, time.time())
        bound = self._bounds.get(queue)
        if bound is None:
            self._execute(
                "INSERT INTO messages (queue, tag, payload, enqueued_at) VALUES (?, ?, ?, ?)", row
            )
        elif self._execute(_BOUNDED_INSERT, (*row, queue, bound)).rowcount == 0:
            raise QueueFull(f"the local queue {queue!r} holds {bound} jobs, its bound")

    def _get(self, queue: str, timeout: float | None = None) -> dict[str, Any]:
        while True:
            found = self._execute(
                "SELECT id FROM messages WHERE queue = ? AND owner IS NULL ORDER BY id LIMIT 1",
                (queue,),
            ).fetchone()
            if found is None:
                raise Empty()
            taken = self._execute(
                "UPDATE messages SET owner = ? WHERE id = ? AND owner IS NULL RETURNING payload",
                (os.getpid(), found[0]),
            ).fetchone()
            if taken is not None:  # else another worker took it first: look again
                payload: dict[str, Any] = orjson.loads(taken[0])
                return payload

    def _remove(self, delivery_tag: str) -> None:
        self._execute("DELETE FROM messages WHERE tag = ?", (delivery_tag,))

    def _release(self, delivery_tag: str) -> None:
        self._execute("UPDATE messages SET owner = NULL WHERE tag = ?", (delivery_tag,))

    def _restore(self, message: Any) -> None:
        # kombu re-publishes unacknowledged messages at a clean close; the row is still there.
        self._release(message.delivery_tag)

    def _size(self, queue: str) -> int:
        row = self._execute(
            "SELECT COUNT(*) FROM messages WHERE queue = ? AND owner IS NULL", (queue,)
        )
        return int(row.fetchone()[0])

    def _purge(self, queue: str) -> int:
        cursor = self._execute("DELETE FROM messages WHERE queue = ? AND owner IS NULL", (queue,))
        return int(cursor.rowcount)

    def _delete(self, queue: str, *args: Any, **kwargs: Any) -> None:
        super()._delete(queue, *args, **kwargs)
        self._purge(queue)

    def _new_queue(self, queue: str, **kwargs: Any) -> None:
        pass

    def _has_queue(self, queue: str, **kwargs: Any) -> bool:
        return True

    def _lookup(self, exchange: str, routing_key: str, default: str | None = None) -> list[str]:
        # Celery's queues are direct exchanges named like the queue: a process that has not
        # declared the binding itself still delivers by the routing key, never to a dead letter.
        if exchange:
            try:
                found = self.typeof(exchange).lookup(
                    self.get_table(exchange), exchange, routing_key, None
                )
            except KeyError:
                found = []
            if found:
                return list(found)
        return [routing_key]

    def close(self) -> None:
        super().close()
        with self._db_lock:
            self._db.close()


class Transport(virtual.Transport):
    """kombu transport `switchover-queue://` (options: `path`, `bounds`)."""

    Channel = Channel
    polling_interval = 0.1
    default_port = 0
    driver_type = "sqlite"
    driver_name = "sqlite3"
    global_state = virtual.BrokerState()

    def __init__(self, client: Any, **kwargs: Any) -> None:
        super().__init__(client, **kwargs)
        self.state = self.global_state

    def driver_version(self) -> str:
        return sqlite3.sqlite_version
