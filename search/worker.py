"""The background worker (``manage.py qcluster``): django-q2's cluster, made to stop on SIGTERM and SIGINT.

Why: django-q2 (1.11) leaves SIGTERM at its default action in the sentinel, pusher, monitor and workers.
A SIGTERM to the whole process group (systemd's default stop, ``kill -TERM -PGID``) kills them at once,
a task mid-way; the cluster process then hangs for good in ``stop_event.set()``, because
multiprocessing's ``Condition.notify`` waits for every sleeper to wake and the dead sentinel was one.
A SIGTERM to the cluster process alone stopped, but only after the workers had run every task already
fetched (up to ``queue_limit`` + ``bulk`` of them).

Here, whoever gets the signal:
- the cluster process only sets the stop event (no blocking call in signal context);
- the sentinel, pusher and monitor ignore the signal and stop when the cluster tells them, so results of
  finished tasks are still saved and acknowledged;
- a worker finishes the task it runs if that takes at most ``Q_STOP_GRACE_SECONDS``, else the task is
  interrupted (``WorkerStopping``) and given back; a worker never starts another task once asked to stop;
- every task fetched but not started is given back to the broker (the ORM broker's row is unlocked), so
  the next cluster runs it at once instead of after ``Q_RETRY``.
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import threading
import time
import uuid
from multiprocessing import Value

from django import db
from django.conf import settings
from django.utils import timezone
from django_q import cluster as q_cluster
from django_q.brokers import get_broker
from django_q.brokers.orm import ORM
from django_q.conf import Conf
from django_q.models import OrmQ
from django_q.signals import post_execute_in_worker, pre_execute
from django_q.signing import SignedPackage
from django_q.tasks import async_task
from django_q.worker import worker

logger = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
# Sent by a worker's grace timer to its own main thread, to interrupt a task that runs past the grace.
ABORT_SIGNAL = signal.SIGUSR1


class WorkerStopping(BaseException):
    """Interrupts a task because its worker stops; the task is given back to the broker to be run again.

    A BaseException, so that neither a task's ``except Exception`` nor django-q2's takes it for a failure
    (django-q2 would record it and, with ``max_attempts`` 1, never run the task again).
    """


def give_back(task: dict, broker=None) -> None:
    """Return a fetched, unfinished task to the broker so that the next free worker runs it now."""
    broker = broker or get_broker()
    if isinstance(broker, ORM):
        OrmQ.objects.using(Conf.ORM).filter(pk=task["ack_id"]).update(lock=timezone.now())
    elif hasattr(broker, "give_back"):  # search.redis_broker: out of the leased list, back to the queue
        broker.give_back(task["ack_id"])
    else:  # brokers whose dequeue removes the message: queue it again
        package = {key: value for key, value in task.items() if key not in ("ack_id", "cluster")}
        broker.enqueue(SignedPackage.dumps(package))
    logger.info("gave back task %s (%s) to the queue", task.get("name"), task.get("func"))


class _WorkerShutdown:
    """A worker process's view of a stop request: the task it runs, and whether it was asked to stop."""

    def __init__(self, timer: Value, grace_seconds: float) -> None:
        self.timer = timer
        self.grace_seconds = grace_seconds
        self.requested = False
        self.current: dict | None = None
        self._main_thread = threading.main_thread().ident

    def install(self) -> None:
        for signum in STOP_SIGNALS:
            signal.signal(signum, self.on_stop_signal)
        signal.signal(ABORT_SIGNAL, self.on_abort_signal)
        pre_execute.connect(self.before_task, weak=False, dispatch_uid="lookalike-worker-before-task")
        post_execute_in_worker.connect(self.after_task, weak=False, dispatch_uid="lookalike-worker-after-task")

    def on_stop_signal(self, signum, frame) -> None:
        if self.timer.value == 0:
            # The sentinel terminates a worker whose task timed out: die at once, as django-q2 expects.
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        if self.requested:
            return
        self.requested = True
        task = self.current
        if task is not None:
            grace = threading.Timer(self.grace_seconds, self._interrupt_if_still_running, args=(task,))
            grace.daemon = True
            grace.start()

    def _interrupt_if_still_running(self, task: dict) -> None:
        if self.current is task:
            logger.warning("task %s still runs after %.0f s: interrupting it", task.get("name"), self.grace_seconds)
            signal.pthread_kill(self._main_thread, ABORT_SIGNAL)

    def on_abort_signal(self, signum, frame) -> None:
        if self.current is not None:
            raise WorkerStopping(f"the worker stopped and gave this task back after {self.grace_seconds:g} s")

    def before_task(self, sender, task: dict, **kwargs) -> None:
        self.current = task
        if self.requested:
            raise WorkerStopping("the worker is stopping: task not started")

    def after_task(self, sender, task: dict, **kwargs) -> None:
        self.current = None


def run_worker(task_queue, result_queue, timer: Value, timeout: int | None) -> None:
    """A worker process: django-q2's worker loop, which a stop request ends after at most one task."""
    shutdown = _WorkerShutdown(timer, settings.Q_STOP_GRACE_SECONDS)
    shutdown.install()
    try:
        worker(task_queue, result_queue, timer, timeout)
    except WorkerStopping:
        task, shutdown.current = shutdown.current, None
        if task is not None:
            db.connections.close_all()  # an interrupted task may have left its connection mid-query
            try:
                give_back(task)
            except Exception:  # it still comes back after Q_RETRY
                logger.exception("could not give back task %s", task.get("name"))


class GracefulSentinel(q_cluster.Sentinel):
    """django-q2's sentinel, deaf to stop signals (the cluster process tells it), with graceful workers."""

    def __init__(self, *args, start: bool = True, **kwargs) -> None:
        super().__init__(*args, start=False, **kwargs)
        for signum in STOP_SIGNALS:  # inherited by the pusher and monitor spawned from here
            signal.signal(signum, signal.SIG_IGN)
        if start:
            self.start()

    def spawn_cluster(self) -> None:
        super().spawn_cluster()
        # Photos a crashed worker left "processing" come back now, not at the schedule's next minute.
        try:
            async_task("search.tasks.recover_stale_images", broker=self.broker, task_name="recover-stale-images")
        except Exception:  # the database may be down: the schedule does it later
            logger.exception("could not queue the stale-photo recovery at start")

    def spawn_worker(self) -> None:
        # As django-q2's spawn_process(worker, ...) does for workers, with run_worker as the target.
        timer = Value("f", -1)
        process = q_cluster.get_mp_context().Process(
            target=run_worker,
            args=(self.task_queue, self.result_queue, timer, self.timeout),
            name=f"Process-{uuid.uuid4().hex}",
        )
        process.daemon = Conf.DAEMONIZE_WORKERS
        process.timer = timer
        self.pool.append(process)
        process.start()

    def stop(self) -> None:
        self.event_out.set()  # the pusher fetches nothing more
        for process in self.pool:  # also when only the cluster process was signalled
            if process.is_alive():
                os.kill(process.pid, signal.SIGTERM)
        self._give_back_queued()
        super().stop()

    def _give_back_queued(self) -> None:
        """Return what was fetched but not started; reading also frees a pusher blocked on a full queue."""
        deadline = time.monotonic() + settings.Q_STOP_GRACE_SECONDS + 10
        while (self.pusher.is_alive() or self.task_queue.qsize() > 0) and time.monotonic() < deadline:
            try:
                task = self.task_queue.get(timeout=0.1)
            except queue.Empty:
                continue
            try:
                give_back(task, self.broker)
            except Exception:
                logger.exception("could not give back task %s", task.get("name"))


class GracefulCluster(q_cluster.Cluster):
    """django-q2's cluster process, whose signal handler only asks the sentinel to stop."""

    def __init__(self, broker=None) -> None:
        self._stop_requested = False
        super().__init__(broker)

    def start(self) -> int:
        # django-q2 starts the sentinel by its module-level name.
        stock_sentinel, q_cluster.Sentinel = q_cluster.Sentinel, GracefulSentinel
        try:
            pid = super().start()
        finally:
            q_cluster.Sentinel = stock_sentinel
        if self._stop_requested and self.stop_event is not None:
            self.stop_event.set()  # a signal came before there was anything to stop
        return pid

    def sig_handler(self, signum, frame) -> None:
        # No join and nothing that may block here: the interrupted code may hold the very lock needed.
        if self._stop_requested:
            return
        self._stop_requested = True
        logger.info("Q Cluster %s stopping on %s", self.name, signal.Signals(signum).name)
        if self.stop_event is not None:
            self.stop_event.set()


def install() -> None:
    """Make ``manage.py qcluster`` (django-q2's command) run the graceful cluster."""
    from django_q.management.commands import qcluster

    qcluster.Cluster = GracefulCluster
