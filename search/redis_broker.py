"""A django-q2 Redis broker that does not lose the tasks of a killed cluster.

Why: django-q2's own Redis broker takes a task off the list with ``BLPOP``; a cluster SIGKILLed (OOM
killer, lost machine) loses the task it runs and every task fetched behind it, so those photos would stay
"pending" for good. Here a fetched task moves atomically to a "leased" list (``BLMOVE``) with its fetch
time and leaves it only when acknowledged; a lease older than ``Q_RETRY`` (longer than any task may run)
goes back to the queue, as the ORM broker's row lock does. A task can so be delivered twice; the photo
claim in search/tasks.py makes the second run a no-op, so every photo is processed exactly once.
"""

from __future__ import annotations

import time

from django_q.brokers.redis_broker import Redis
from django_q.conf import Conf

# Move one message from the leased list back to the head of the queue, only if it is still leased: two
# clusters recovering the same lease at once cannot both queue it again.
_RETURN_LEASE = """
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 1 then
    redis.call('HDEL', KEYS[2], ARGV[1])
    redis.call('LPUSH', KEYS[3], ARGV[1])
    return 1
end
return 0
"""


class ReliableRedis(Redis):
    # How often one broker looks for expired leases (seconds): the leased list is short (queue_limit a cluster).
    RECOVERY_INTERVAL = 1.0

    def __init__(self, list_key: str | None = None) -> None:
        super().__init__(list_key)
        self.leased_key = f"{self.list_key}:leased"
        self.lease_times_key = f"{self.list_key}:lease-times"
        self._last_recovery = 0.0
        self._return_lease = None

    def _script(self):
        if self._return_lease is None:
            self._return_lease = self.connection.register_script(_RETURN_LEASE)
        return self._return_lease

    def dequeue(self):
        self.requeue_expired()
        message = self.connection.blmove(self.list_key, self.leased_key, 1, "LEFT", "RIGHT")
        if message is None:
            return None
        self.connection.hset(self.lease_times_key, message, time.time())
        return [(message, message)]  # the message itself is its ack id

    def acknowledge(self, task_id) -> None:
        pipe = self.connection.pipeline()
        pipe.lrem(self.leased_key, 1, task_id)
        pipe.hdel(self.lease_times_key, task_id)
        pipe.execute()

    def delete(self, task_id) -> None:
        self.acknowledge(task_id)

    def fail(self, task_id) -> None:
        self.acknowledge(task_id)

    def give_back(self, task_id) -> bool:
        """Put a leased, unfinished task back at the head of the queue now (a stopping worker)."""
        keys = [self.leased_key, self.lease_times_key, self.list_key]
        return bool(self._script()(keys=keys, args=[task_id]))

    def lock_size(self) -> int:
        return self.connection.llen(self.leased_key)

    def requeue_expired(self, *, now: float | None = None) -> int:
        """Queue again every task leased longer ago than ``Q_RETRY``; returns how many."""
        now = time.time() if now is None else now
        if now - self._last_recovery < self.RECOVERY_INTERVAL:
            return 0
        self._last_recovery = now
        returned = 0
        for message in self.connection.lrange(self.leased_key, 0, -1):
            leased_at = self.connection.hget(self.lease_times_key, message)
            if leased_at is None:  # fetched by a cluster killed before it wrote the time: start the clock
                self.connection.hsetnx(self.lease_times_key, message, now)
            elif now - float(leased_at) > Conf.RETRY:
                returned += self.give_back(message)
        return returned

    def delete_queue(self):
        return self.connection.delete(self.list_key, self.leased_key, self.lease_times_key)

    def purge_queue(self):
        self.connection.delete(self.leased_key, self.lease_times_key)
        return super().purge_queue()
