"""Webhook URLs: private, loopback, link-local and other non-public addresses refused, at registration and delivery."""

import ssl

import pytest
from django.core.exceptions import ValidationError

from apikeys import webhooks
from apikeys.models import Delivery, WebhookEndpoint

from .helpers import issue, make_owner
from .webhook_receiver import Receiver

pytestmark = pytest.mark.django_db


@pytest.fixture
def production_urls(settings):
    """The production defaults: public addresses only, https only."""
    settings.OMIKEYS_WEBHOOK_ALLOWED_NETWORKS = []
    settings.OMIKEYS_WEBHOOK_ALLOW_HTTP = False


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/hook",  # loopback
        "https://localhost/hook",  # a name for loopback
        "https://[::1]/hook",
        "https://10.1.2.3/hook",  # private
        "https://172.16.0.9/hook",
        "https://192.168.1.1:8443/hook",
        "https://169.254.169.254/latest/meta-data",  # link-local: cloud metadata
        "https://[fe80::1]/hook",
        "https://100.64.0.1/hook",  # shared address space (carrier NAT)
        "https://0.0.0.0/hook",  # unspecified
        "https://224.0.0.1/hook",  # multicast
        "https://240.0.0.1/hook",  # reserved
        "https://[::ffff:127.0.0.1]/hook",  # loopback in an IPv4-mapped IPv6 address
        "https://[fc00::1]/hook",  # unique local
        # IPv4 loopback written in the forms inet_aton reads: decimal, hex, octal, short.
        "https://2130706433/hook",
        "https://0x7f000001/hook",
        "https://0177.0.0.1/hook",
        "https://127.1/hook",
        # IPv6 addresses that carry or reach a non-public IPv4 address, and other reserved ranges.
        "https://[::127.0.0.1]/hook",  # IPv4-compatible (deprecated, in ::/8)
        "https://[64:ff9b::a9fe:a9fe]/hook",  # NAT64 to 169.254.169.254
        "https://[64:ff9b::10.0.0.5]/hook",  # NAT64 to a private address
        "https://[64:ff9b:1::a00:5]/hook",  # local-use NAT64 prefix (RFC 8215)
        "https://[2002:7f00:1::1]/hook",  # 6to4 of 127.0.0.1
        "https://[2002:a9fe:a9fe::1]/hook",  # 6to4 of 169.254.169.254
        "https://[fec0::1]/hook",  # site-local (deprecated)
        "https://[5f00::1]/hook",  # reserved
        "https://[::ffff:169.254.169.254]/hook",
    ],
)
def test_non_public_addresses_are_refused(production_urls, url):
    with pytest.raises(ValidationError) as refused:
        webhooks.register_endpoint(url, ["key.created"])
    assert "url" in refused.value.message_dict
    assert "webhooks may not call" in refused.value.message_dict["url"][0]
    assert WebhookEndpoint.objects.count() == 0


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://93.184.216.34/hook", "Use https://"),
        ("ftp://93.184.216.34/hook", "Use an https:// URL"),
        ("https://user:pass@93.184.216.34/hook", "no user name or password"),
        ("https://93.184.216.34:99999/hook", "not a valid URL"),
        ("https://no-such-host.invalid/hook", "does not resolve"),
        ("not a url", "Use an https:// URL"),
    ],
)
def test_other_bad_urls_are_refused_with_a_reason(production_urls, url, message):
    with pytest.raises(ValidationError) as refused:
        webhooks.register_endpoint(url, ["key.created"])
    assert message in refused.value.message_dict["url"][0]


@pytest.mark.parametrize(
    "url",
    [
        "https://93.184.216.34/hook",
        "https://[64:ff9b::93.184.216.34]/hook",  # NAT64 of a public address (an IPv6-only network with DNS64)
        "https://[2606:2800:220:1:248:1893:25c8:1946]/hook",
    ],
)
def test_a_public_address_is_accepted(production_urls, url):
    endpoint, _ = webhooks.register_endpoint(url, ["key.created"])
    assert endpoint.url == url


def test_unknown_or_no_event_types_are_refused():
    with pytest.raises(ValidationError) as refused:
        webhooks.register_endpoint("http://127.0.0.1:9/hook", ["key.exploded"])
    assert "Unknown event type key.exploded" in refused.value.message_dict["event_types"][0]
    with pytest.raises(ValidationError, match="at least one event type"):
        webhooks.register_endpoint("http://127.0.0.1:9/hook", [])


def test_loopback_is_allowed_where_the_setting_allows_it(settings):
    settings.OMIKEYS_WEBHOOK_ALLOWED_NETWORKS = []
    with pytest.raises(ValidationError):
        webhooks.register_endpoint("http://127.0.0.1:9/hook", ["key.created"])
    settings.OMIKEYS_WEBHOOK_ALLOWED_NETWORKS = [__import__("ipaddress").ip_network("127.0.0.0/8")]
    assert webhooks.register_endpoint("http://127.0.0.1:9/hook", ["key.created"])[0].pk


def test_the_address_is_checked_again_at_delivery(settings):
    receiver = Receiver()
    try:
        webhooks.register_endpoint(receiver.url, ["key.created"])  # allowed then
        issue(make_owner())
        settings.OMIKEYS_WEBHOOK_ALLOWED_NETWORKS = []  # and no longer (as if DNS now pointed inside)

        webhooks.deliver_due()

        assert receiver.received == []
        delivery = Delivery.objects.get()
        assert delivery.status == "pending" and delivery.last_response_code is None
        assert delivery.last_error.startswith("refused: 127.0.0.1 resolves to 127.0.0.1")
    finally:
        receiver.stop()


def test_https_certificates_are_verified(tmp_path):
    from .conftest import _key_and_certificate

    private_pem, certificate_pem, _ = _key_and_certificate()  # self-signed: no trusted authority issued it
    (tmp_path / "key.pem").write_bytes(private_pem)
    (tmp_path / "cert.pem").write_bytes(certificate_pem)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    receiver = Receiver(tls=context)
    try:
        webhooks.register_endpoint(receiver.url, ["key.created"])
        issue(make_owner())

        webhooks.deliver_due()

        assert receiver.received == []
        delivery = Delivery.objects.get()
        assert delivery.status == "pending" and delivery.last_response_code is None
        assert "CERTIFICATE_VERIFY_FAILED" in delivery.last_error
    finally:
        receiver.stop()
