"""The real worker (manage.py qcluster) sends events, and a worker killed mid-delivery loses none."""

import os
import signal
import subprocess
import sys
import time

import pytest
from django.conf import settings
from django.utils import timezone
from django_q.conf import Conf
from django_q.models import Schedule
from django_q.scheduler import scheduler

from apikeys import webhooks
from apikeys.models import Delivery

from .helpers import database_url, issue, make_owner
from .servers import ROOT, Server, _popen, server_env
from .webhook_receiver import HOLD, Receiver

pytestmark = pytest.mark.django_db(transaction=True)


def start_worker(workdir) -> Server:
    """``manage.py qcluster`` in a process group of its own, sharing this test's database and secret key."""
    env = server_env(
        database_url(),
        DJANGO_SECRET_KEY=settings.SECRET_KEY,
        DJANGO_LOG_LEVEL="INFO",
        OMIKEYS_WEBHOOK_ALLOWED_NETWORKS="127.0.0.0/8",
        OMIKEYS_WEBHOOK_ALLOW_HTTP="true",
        OMIKEYS_WEBHOOK_TIMEOUT="1.5",
        OMIKEYS_WEBHOOK_LEASE_SECONDS="4",
        OMIKEYS_WORKER_PROCESSES="1",
    )
    log = workdir / f"worker-{time.monotonic_ns()}.log"
    process = _popen([sys.executable, "manage.py", "qcluster"], log, cwd=ROOT, env=env, start_new_session=True)
    return Server("worker", process, log)


def kill_group(worker: Server) -> None:
    """SIGKILL to the worker and all its processes: no cleanup at all."""
    try:
        os.killpg(worker.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    worker.process.wait(timeout=30)


def stop(worker: Server) -> None:
    """SIGTERM to the worker's main process, as systemd stops it; SIGKILL to the group if it lingers."""
    if worker.process.poll() is None:
        worker.process.send_signal(signal.SIGTERM)
        try:
            worker.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pass
    kill_group(worker)


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.stop()


@pytest.fixture
def workers(tmp_path):
    started = []

    def start() -> Server:
        worker = start_worker(tmp_path)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        stop(worker)


def scheduler_tick(due: str) -> None:
    """One tick of django-q's scheduler, which the worker's guard process makes every 30 s.

    ``django_q.scheduler.scheduler`` turns each due schedule (``apikeys.tasks.SCHEDULES``, the rows
    ``migrate`` makes) into a task on the queue, and the real worker runs it. django-q ticks every 30 s,
    a constant it has no setting for; calling the same function here stands in for waiting up to 30 s,
    as moving the clock stands in for waiting for a due time. ``due``: the schedule this test needs, due now.
    """
    assert Conf.SCHEDULER  # the worker's guard runs the scheduler: Q_CLUSTER has not turned it off
    schedule = Schedule.objects.get(name=due)
    if schedule.next_run > timezone.now():
        # The worker's own tick ran it meanwhile, perhaps before what the test waits for was due, and set
        # the next run a minute on (Q_CLUSTER's catch_up is off): due now, as that minute's end would make it.
        Schedule.objects.filter(pk=schedule.pk).update(next_run=timezone.now())
    scheduler()


def wait_until(check, what: str, timeout: float = 90, worker: Server | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"{what} within {timeout} s\n" + (worker.log_text()[-4000:] if worker else ""))


def test_the_worker_sends_a_committed_change_at_once(receiver, workers):
    _, secret = webhooks.register_endpoint(receiver.url, ["key.created"])
    worker = workers()

    issued = issue(make_owner())

    try:
        receiver.wait_for(1, timeout=90)
    except AssertionError:
        raise AssertionError(worker.log_text()[-4000:]) from None
    [payload] = receiver.verified(secret)
    assert payload["data"]["key_id"] == str(issued.api_key.pk)
    wait_until(lambda: Delivery.objects.get().status == "delivered", "the delivery was not recorded", worker=worker)
    # Other processes log only django-q's warnings (no "Enqueued" lines); the worker's log still shows its activity.
    assert "INFO django-q" in worker.log_text(), worker.log_text()[-4000:]


def test_a_worker_killed_mid_delivery_loses_nothing(receiver, workers):
    _, secret = webhooks.register_endpoint(receiver.url, ["key.created"])
    receiver.answers = [HOLD]  # the first request is held open: the worker is mid-delivery
    first = workers()
    issue(make_owner())
    try:
        receiver.wait_for(1, timeout=90)
    except AssertionError:
        raise AssertionError(first.log_text()[-4000:]) from None

    kill_group(first)  # SIGKILL: no cleanup, the lease stays behind
    receiver.release()
    assert Delivery.objects.get().status == "pending"

    second = workers()

    # The lease (OMIKEYS_WEBHOOK_LEASE_SECONDS, 4 s here) keeps the delivery from every worker until it ends;
    # then the scheduled pass over due deliveries, run by the second worker, takes it.
    def lease_ended() -> bool:  # or released: a worker that delivered it meanwhile leaves no lease
        locked_until = Delivery.objects.get().locked_until
        return locked_until is None or locked_until <= timezone.now()

    wait_until(lease_ended, "the lease did not end", 30, second)
    scheduler_tick("omikeys: deliver due webhooks")
    try:
        received = receiver.wait_for(2, timeout=120)
    except AssertionError:
        raise AssertionError(second.log_text()[-4000:]) from None
    assert len({request.webhook_id for request in received}) == 1  # the same event, perhaps twice
    assert len(receiver.verified(secret)) == len(received)
    wait_until(lambda: Delivery.objects.get().status == "delivered", "the delivery was not recorded", worker=second)
