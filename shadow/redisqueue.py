"""Kombu's Redis transport without its delivery gap: a job is never only in a worker's memory.

Kombu's Redis channel takes a job off its queue with BRPOP and records it as unacknowledged
(the `unacked` hash) in a second command (`QoS.append`). A job is in neither place between
the two: when Redis stops in that instant (the BRPOP reply never leaves the server, or the
append fails on the way down), or when the worker dies there, the job is gone, and nothing
counts it (kombu/transport/redis.py `_brpop_read`; celery/kombu#305 and #593 report the loss).

This channel closes the gap with Redis's reliable-queue pattern (the LMOVE documentation,
"Pattern: Reliable queue", redis.io/docs/latest/commands/lmove): BLMOVE moves the job into a
processing list of its queue in the same command that takes it, and the append records it as
unacknowledged and removes it from that list in one MULTI/EXEC transaction. A job whose
taker vanished stays in the processing list; the periodic unacked-restore pass, which kombu
already runs under its mutex, puts every job found there longer than the visibility timeout
back at the head of its queue (as kombu does for an unacked job of a dead worker). Delivery
stays at least once, as with acks-late jobs anyway; the worker stores each pair once by id.

BLMOVE takes one source list. A worker consuming several queues waits on them in turn, at most
`MULTI_QUEUE_WAIT_S` each, and moves to the next queue after every job (round robin).
Priorities are one step (`priority_steps=[0]`): every job goes to its queue's own list.
The `type: ignore`s mark kombu's private hooks, which its stubs do not declare; the tests in
tests/shadow/test_redisqueue.py run them against a real Redis.
"""

from __future__ import annotations

import hashlib
import logging
from queue import Empty
from time import monotonic, time
from typing import Any

from kombu.transport import redis as kombu_redis
from kombu.transport import virtual
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import dumps, loads

log = logging.getLogger(__name__)


# How long a worker of several queues blocks on one of them before looking at the next.
MULTI_QUEUE_WAIT_S = 0.2
PROCESSING = "processing"
# what `broker_transport` names for a redis:// broker (shadow/broker.py)
TRANSPORT = f"{__name__}:Transport"
SEEN = "processing-seen"

# Back at the head of the queue (the end BLMOVE takes from) only if it is still in the
# processing list: a taker that recorded it meanwhile keeps it, and it is not delivered twice.
_REQUEUE = """
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 1 then
    redis.call('RPUSH', KEYS[2], ARGV[1])
    return 1
end
return 0
"""


class QoS(kombu_redis.QoS):
    """Records a taken job as unacknowledged and out of the processing list, in one step."""

    channel: Channel

    def append(self, message: Any, delivery_tag: str) -> None:
        """Kombu's append (zadd + hset in one pipeline) with the LREM of the taken job added."""
        taken = self.channel.take_in_hand()
        if taken is None:
            super().append(message, delivery_tag)
            return
        processing, raw = taken
        delivery = message.delivery_info
        exchange, routing_key = delivery["exchange"], delivery["routing_key"]
        with self.pipe_or_acquire() as pipe:
            pipe.zadd(self.unacked_index_key, {delivery_tag: time()}).hset(
                self.unacked_key, delivery_tag, dumps([message._raw, exchange, routing_key])
            ).lrem(processing, 1, raw).execute()
        # kombu's virtual QoS bookkeeping (what `super().append` does after its pipeline)
        virtual.QoS.append(self, message, delivery_tag)

    def restore_visible(self, start: int = 0, num: int = 10, interval: int = 10) -> None:
        """Kombu's pass over the unacked jobs, then the same pass over the processing lists."""
        super().restore_visible(start=start, num=num, interval=interval)
        # kombu's throttle: the pass above ran on this call only at these counts
        if (self._vrestore_count - 1) % (interval or 1):  # type: ignore[attr-defined]
            return
        with self.channel.conn_or_acquire() as client:
            try:
                with kombu_redis.Mutex(client, self.unacked_mutex_key, self.unacked_mutex_expire):
                    for queue in self.channel.active_queues:
                        self.channel.requeue_stranded(client, queue, self.visibility_timeout)
            except kombu_redis.MutexHeld:
                pass


class Channel(kombu_redis.Channel):
    """BLMOVE into a processing list instead of BRPOP; see the module's docstring."""

    QoS = QoS
    priority_steps = [0]  # noqa: RUF012  (kombu's attribute, read per channel)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_hand: tuple[str, bytes] | None = None
        self._moving_from: str | None = None
        self._turn = 0

    def processing_key(self, queue: str) -> str:
        """The list that holds `queue`'s jobs between their taking and their recording."""
        return f"{queue}{self.sep}{PROCESSING}"

    def take_in_hand(self) -> tuple[str, bytes] | None:
        """The job being delivered now, as (processing list, raw message), once."""
        taken, self._in_hand = self._in_hand, None
        return taken

    def _brpop_start(self, timeout: float | None = None) -> None:
        queues = list(self.active_queues)
        if not queues or self.global_keyprefix:
            # kombu's own path for a prefixed keyspace (its raw-command prefixing differs)
            self._moving_from = None
            super()._brpop_start(timeout)  # type: ignore[misc]
            return
        queues.sort()
        queue = queues[self._turn % len(queues)]
        wait = self.brpop_timeout if timeout is None else timeout
        if len(queues) > 1:
            wait = min(wait, MULTI_QUEUE_WAIT_S)
        self._moving_from = queue
        self._in_poll = self.client.connection
        self._brpop_sent_at = monotonic()
        self.client.connection.send_command(
            "BLMOVE", queue, self.processing_key(queue), "RIGHT", "LEFT", wait
        )

    def _brpop_read(self, **options: Any) -> bool:
        queue = self._moving_from
        if queue is None:
            return bool(super()._brpop_read(**options))  # type: ignore[misc]
        try:
            try:
                raw = self.client.parse_response(self.client.connection, "BLMOVE", **options)
            except self.connection_errors:  # type: ignore[attr-defined]
                # as kombu: the next iteration reconnects
                self.client.connection.disconnect()
                raise
            if raw is None:
                self._turn += 1
                raise Empty()
            self._turn += 1
            self._in_hand = (self.processing_key(queue), raw)
            self.connection._deliver(loads(bytes_to_str(raw)), queue)
            # Delivered without an append (a no-ack consumer): it must not stay in the list.
            # After a failed delivery it stays, and the restore pass puts it back.
            leftover = self.take_in_hand()
            if leftover is not None:
                with self.conn_or_acquire() as client:
                    client.lrem(leftover[0], 1, leftover[1])
            return True
        finally:
            self._in_poll = None
            self._flush_brpop_reauth()  # type: ignore[attr-defined]

    def requeue_stranded(self, client: Any, queue: str, older_than_s: float) -> int:
        """Put back the jobs of `queue`'s processing list seen there for `older_than_s` or more.

        A live taker moves its job out within a round trip. Each pass notes the jobs it finds
        (a digest and when first seen) in a hash beside the list; a job still there a visibility
        timeout after it was first seen lost its taker. Returns how many went back.
        """
        processing = self.processing_key(queue)
        seen_key = f"{queue}{self.sep}{SEEN}"
        now = time()
        raws: list[bytes] = client.lrange(processing, 0, -1)
        seen = {bytes_to_str(k): float(v) for k, v in client.hgetall(seen_key).items()}
        present: set[str] = set()
        requeued = 0
        for raw in raws:
            digest = hashlib.sha256(raw).hexdigest()
            present.add(digest)
            first = seen.get(digest)
            if first is None:
                client.hset(seen_key, digest, now)
            elif now - first >= older_than_s:
                requeued += int(client.eval(_REQUEUE, 2, processing, queue, raw))
                client.hdel(seen_key, digest)
                present.discard(digest)
        gone = [digest for digest in seen if digest not in present]
        if gone:
            client.hdel(seen_key, *gone)
        if requeued:
            log.warning(
                "%d shadow job(s) of queue %s requeued: their taker vanished before recording them",
                requeued,
                queue,
            )
        return requeued


class Transport(kombu_redis.Transport):
    """Kombu's Redis transport with `Channel` above (`broker_transport` of a redis:// broker)."""

    Channel = Channel
