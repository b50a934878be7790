"""The real worker (manage.py qcluster) mails a committed change's notice, and one a mail server outage delayed."""

import sys
import time

import pytest
from django.conf import settings
from django.utils import timezone

from apikeys import tasks
from apikeys.models import Notice

from .helpers import database_url, issue, make_owner
from .servers import ROOT, Server, _popen, server_env
from .smtp_server import SmtpServer
from .test_webhook_worker import scheduler_tick, stop

pytestmark = pytest.mark.django_db(transaction=True)


def start_worker(workdir, smtp_port: int) -> Server:
    """``manage.py qcluster`` sending mail to 127.0.0.1:``smtp_port``, sharing this test's database."""
    env = server_env(
        database_url(),
        DJANGO_SECRET_KEY=settings.SECRET_KEY,
        EMAIL_URL=f"smtp://127.0.0.1:{smtp_port}",
        EMAIL_TIMEOUT="2",
        DEFAULT_FROM_EMAIL="keys@example.com",
        OMIKEYS_PUBLIC_URL="https://keys.example.com",
        OMIKEYS_NOTICE_RETRY_SCHEDULE="1,1,1",
        OMIKEYS_WORKER_PROCESSES="1",
    )
    log = workdir / f"worker-{time.monotonic_ns()}.log"
    process = _popen([sys.executable, "manage.py", "qcluster"], log, cwd=ROOT, env=env, start_new_session=True)
    return Server("worker", process, log)


@pytest.fixture
def smtp():
    server = SmtpServer().start()
    yield server
    server.stop()


@pytest.fixture
def worker(tmp_path, smtp):
    started = start_worker(tmp_path, smtp.port)
    yield started
    stop(started)


def wait_until(check, what: str, worker: Server, timeout: float = 150) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"{what} within {timeout} s\n{worker.log_text()[-4000:]}")


def test_the_worker_mails_a_new_key_s_owner_at_once(settings, smtp, worker):
    settings.OMIKEYS_SEND_EMAIL = True  # this process writes the notice as pending, as the web's would
    issue(make_owner("uid-worker", "worker@example.com"), "from the worker")
    try:
        [mail] = smtp.wait_for(1, timeout=90)
    except AssertionError:
        raise AssertionError(worker.log_text()[-4000:]) from None
    assert mail.rcpt_tos == ["worker@example.com"]
    assert mail.subject == "A new API key “from the worker” was created on your Omi account"
    assert "https://keys.example.com/keys/" in mail.text
    wait_until(lambda: Notice.objects.get().status == "sent", "the notice was not recorded as sent", worker)
    time.sleep(1)
    assert len(smtp.mails) == 1


def test_a_notice_delayed_by_a_mail_server_outage_is_sent_once_when_it_is_back(settings, smtp, worker):
    settings.OMIKEYS_SEND_EMAIL = True
    tasks.ensure_schedules()  # as after migrate: the worker's scheduled pass sends due notices every minute
    smtp.stop()
    issue(make_owner("uid-outage", "outage@example.com"), "during the outage")
    wait_until(lambda: Notice.objects.get().attempts >= 1, "the worker did not try the mail", worker)
    notice = Notice.objects.get()
    assert notice.status == "pending" and notice.last_error

    smtp.start()  # back, on the same port: the scheduled pass (about once a minute) sends it

    def due() -> bool:  # after OMIKEYS_NOTICE_RETRY_SCHEDULE's first wait (1 s here), with no lease held
        notice, now = Notice.objects.get(), timezone.now()
        if notice.status != "pending":  # the worker's own scheduled pass sent it meanwhile: nothing left to wait for
            return True
        return notice.next_attempt_at <= now and (notice.locked_until is None or notice.locked_until <= now)

    wait_until(due, "the notice was not due again", worker, timeout=30)
    scheduler_tick("omikeys: send due notices")
    wait_until(lambda: Notice.objects.get().status == "sent", "the notice was not sent after the outage", worker)
    [mail] = smtp.wait_for(1)
    assert "“during the outage”" in mail.subject
    time.sleep(1)
    assert len(smtp.mails) == 1
