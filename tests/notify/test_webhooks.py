import base64
import http.server
import json
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from ponder.notify.webhooks import (
    DeliveryOutcome,
    UnsafeWebhookURL,
    check_webhook_url,
    deliver,
    generate_secret,
    retry_delay,
    sign,
    signed_headers,
)

BODY = json.dumps({"type": "job.succeeded", "data": {"job_id": "j1"}}).encode()
LOCAL = ["127.0.0.1"]


def test_generated_secret_is_24_random_bytes() -> None:
    secret = generate_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 24
    assert generate_secret() != secret


def test_signature_verifies_with_standardwebhooks() -> None:
    secret = generate_secret()
    headers = signed_headers(secret, "msg_1", int(time.time()), BODY)
    assert headers["content-type"] == "application/json"
    assert Webhook(secret).verify(BODY, headers) == json.loads(BODY)


def test_signature_matches_reference_implementation() -> None:
    secret, now = generate_secret(), int(time.time())
    reference = Webhook(secret).sign("msg_1", datetime.fromtimestamp(now, UTC), BODY.decode())
    assert sign(secret, "msg_1", now, BODY) == reference


def test_both_secrets_verify_during_rotation() -> None:
    old, new = generate_secret(), generate_secret()
    headers = signed_headers([old, new], "msg_1", int(time.time()), BODY)
    assert len(headers["webhook-signature"].split(" ")) == 2
    Webhook(old).verify(BODY, headers)
    Webhook(new).verify(BODY, headers)


def test_tampered_body_fails_verification() -> None:
    secret = generate_secret()
    headers = signed_headers(secret, "msg_1", int(time.time()), BODY)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY.replace(b"j1", b"j2"), headers)


def test_other_secret_fails_verification() -> None:
    headers = signed_headers(generate_secret(), "msg_1", int(time.time()), BODY)
    with pytest.raises(WebhookVerificationError):
        Webhook(generate_secret()).verify(BODY, headers)


REFUSED = [
    ("ftp://example.com/hook", "scheme-ftp"),
    ("file:///etc/passwd", "scheme-file"),
    ("https://user:pass@example.com/hook", "userinfo"),
    ("http://127.0.0.1/hook", "loopback"),
    ("http://localhost/hook", "localhost"),
    ("http://[::1]/hook", "ipv6-loopback"),
    ("http://[::ffff:127.0.0.1]/hook", "ipv4-mapped-loopback"),
    ("http://10.0.0.1/hook", "rfc1918-10"),
    ("http://172.16.0.1/hook", "rfc1918-172"),
    ("http://192.168.1.1/hook", "rfc1918-192"),
    ("http://169.254.169.254/latest/meta-data/", "cloud-metadata"),
    ("http://0.0.0.0/hook", "unspecified"),
    ("http://100.64.0.1/hook", "shared-cgnat"),
    ("http://2130706433/hook", "decimal-loopback"),
    ("http://0177.0.0.1/hook", "octal-loopback"),
    ("http://0x7f000001/hook", "hex-loopback"),
    ("http://127.1/hook", "short-loopback"),
    ("http://[fe80::1]/hook", "ipv6-link-local"),
    ("http://[fc00::1]/hook", "ipv6-unique-local"),
    ("http://[2002:7f00:1::]/hook", "6to4-loopback"),
    ("http://224.0.0.1/hook", "multicast"),
    ("http:///hook", "no-host"),
    ("http://[::]/hook", "ipv6-unspecified"),
    ("http://0/hook", "zero-address"),
    ("http://[::127.0.0.1]/hook", "ipv4-compatible-loopback"),
    ("http://[::ffff:7f00:1]/hook", "ipv4-mapped-hex-loopback"),
    ("http://[0:0:0:0:0:ffff:169.254.169.254]/hook", "ipv4-mapped-metadata"),
    ("http://[64:ff9b::a9fe:a9fe]/hook", "nat64-metadata"),
    ("http://[2001::1]/hook", "teredo"),
    ("http://[fd00:ec2::254]/hook", "aws-ipv6-metadata"),
    ("http://[fe80::1%25eth0]/hook", "ipv6-link-local-zone"),
    ("http://[ff02::1]/hook", "ipv6-multicast"),
    ("http://100.100.100.200/hook", "alibaba-metadata"),
    ("http://192.0.0.192/hook", "ietf-protocol-assignments"),
    ("http://198.18.0.1/hook", "benchmarking"),
    ("http://192.0.2.1/hook", "documentation"),
    ("http://240.0.0.1/hook", "reserved-class-e"),
    ("http://255.255.255.255/hook", "broadcast"),
    ("http://0x7f.1/hook", "hex-short-loopback"),
    ("http://0177.0.0.01/hook", "octal-octets-loopback"),
    ("http://017700000001/hook", "octal-integer-loopback"),
    ("http://127.000.000.001/hook", "zero-padded-loopback"),
    ("http://\uff11\uff12\uff17.\uff10.\uff10.\uff11/hook", "fullwidth-digits-loopback"),
    ("http://localhost./hook", "localhost-trailing-dot"),
    ("HTTP://127.0.0.1/hook", "uppercase-scheme-loopback"),
    ("http://127.0.0.1:80@example.com/hook", "userinfo-smuggled-host"),
    ("http://%31%32%37.0.0.1/hook", "percent-encoded-host"),
    ("gopher://example.com/hook", "scheme-gopher"),
]


@pytest.mark.parametrize("url", [url for url, _ in REFUSED], ids=[id_ for _, id_ in REFUSED])
def test_unsafe_url_is_refused(url: str) -> None:
    with pytest.raises(UnsafeWebhookURL):
        check_webhook_url(url)


def test_hostname_resolving_to_private_address_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _fake_dns(monkeypatch, "hooks.example.com", ["93.184.216.34", "10.1.2.3"])
    with pytest.raises(UnsafeWebhookURL, match="10.1.2.3"):
        check_webhook_url("https://hooks.example.com/hook")


def test_public_hostname_returns_its_addresses(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_dns(monkeypatch, "hooks.example.com", ["93.184.216.34"])
    assert check_webhook_url("https://hooks.example.com/hook") == ["93.184.216.34"]


def test_unresolvable_host_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_dns(monkeypatch, "hooks.example.com", ["93.184.216.34"])
    with pytest.raises(UnsafeWebhookURL, match="cannot resolve"):
        check_webhook_url("https://nowhere.example.com/hook")


def test_nat64_address_of_a_public_ipv4_is_allowed() -> None:
    assert check_webhook_url("http://[64:ff9b::808:808]/hook") == ["64:ff9b::808:808"]


def test_allow_hosts_permits_loopback() -> None:
    assert check_webhook_url("http://127.0.0.1:8080/hook", allow_hosts=LOCAL) == ["127.0.0.1"]


def test_allow_hosts_matches_the_host_as_written() -> None:
    with pytest.raises(UnsafeWebhookURL):
        check_webhook_url("http://2130706433/hook", allow_hosts=LOCAL)


Hits = list[tuple[str, dict[str, str], bytes]]


class _Receiver(http.server.BaseHTTPRequestHandler):
    """Answers each path with a fixed status; records (path, headers, body) of every POST."""

    hits: Hits

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        self.hits.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
        status, headers = {
            "/ok": (200, {}),
            "/fail": (500, {}),
            "/redirect": (302, {"location": "/target"}),
            "/gone": (410, {}),
            "/busy": (429, {"retry-after": "7"}),
            "/busy-until": (503, {"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}),
        }.get(self.path, (200, {}))
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, Hits]]:
    """A real HTTP server on 127.0.0.1 and a random port."""
    hits: Hits = []
    handler = type("Receiver", (_Receiver,), {"hits": hits})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", hits
    server.shutdown()
    server.server_close()


def _post(url: str, path: str) -> tuple[DeliveryOutcome, str]:
    secret = generate_secret()
    headers = signed_headers(secret, "msg_1", int(time.time()), BODY)
    return deliver(url + path, BODY, headers, timeout_s=5, allow_hosts=LOCAL), secret


def test_2xx_is_delivered_with_signed_body(receiver: tuple[str, Hits]) -> None:
    url, hits = receiver
    outcome, secret = _post(url, "/ok")
    assert outcome.delivered and outcome.error is None and outcome.status_code == 200
    _, headers, body = hits[0]
    assert body == BODY
    Webhook(secret).verify(body, headers)


def test_request_keeps_the_host_name_it_was_addressed_to(receiver: tuple[str, Hits]) -> None:
    url, hits = receiver
    named = url.replace("127.0.0.1", "localhost")
    outcome = deliver(named + "/ok", BODY, {}, timeout_s=5, allow_hosts=["localhost"])
    assert outcome.delivered
    assert hits[0][1]["host"] == named.removeprefix("http://")


def test_5xx_is_not_delivered(receiver: tuple[str, Hits]) -> None:
    outcome, _ = _post(receiver[0], "/fail")
    assert not outcome.delivered and outcome.status_code == 500 and outcome.error == "HTTP 500"
    assert not outcome.gone


def test_redirect_is_not_followed(receiver: tuple[str, Hits]) -> None:
    url, hits = receiver
    outcome, _ = _post(url, "/redirect")
    assert outcome.status_code == 302 and not outcome.delivered
    assert [path for path, _, _ in hits] == ["/redirect"]


def test_410_means_gone(receiver: tuple[str, Hits]) -> None:
    outcome, _ = _post(receiver[0], "/gone")
    assert outcome.gone and not outcome.delivered


def test_429_retry_after_seconds_is_parsed(receiver: tuple[str, Hits]) -> None:
    outcome, _ = _post(receiver[0], "/busy")
    assert outcome.status_code == 429 and outcome.retry_after_s == 7


def test_503_retry_after_date_in_the_past_is_zero(receiver: tuple[str, Hits]) -> None:
    outcome, _ = _post(receiver[0], "/busy-until")
    assert outcome.status_code == 503 and outcome.retry_after_s == 0


def test_connection_refused_is_an_outcome_not_an_exception() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    outcome, _ = _post(f"http://127.0.0.1:{port}", "/ok")
    assert outcome.status_code is None and outcome.error and not outcome.delivered
    assert BODY.decode() not in outcome.error


def test_unsafe_url_at_delivery_is_refused_without_connecting() -> None:
    outcome = deliver("http://10.0.0.1/hook", BODY, {}, timeout_s=5, allow_hosts=())
    assert outcome.status_code is None
    assert outcome.error is not None and outcome.error.startswith("refused: ")


def test_retry_delay_follows_the_schedule_within_its_jitter() -> None:
    schedule = [5.0, 300.0, 1800.0]
    for attempt, planned in enumerate(schedule, start=1):
        delays = [retry_delay(attempt, schedule=schedule, jitter=0.2) for _ in range(50)]
        assert all(0.8 * planned <= delay <= 1.2 * planned for delay in delays)
        assert len(set(delays)) > 1  # jittered, so failed deliveries do not retry in step
    assert retry_delay(4, schedule=schedule, jitter=0.2) is None  # the schedule is used up


def test_default_retry_schedule_spans_about_three_days() -> None:
    from ponder.config import NotifySettings

    schedule = NotifySettings().webhook_retry_schedule_s
    assert 2.5 * 86400 <= sum(schedule) <= 3.5 * 86400
    assert schedule == sorted(schedule)


def _fake_dns(monkeypatch: pytest.MonkeyPatch, host: str, addresses: list[str]) -> None:
    def getaddrinfo(name: str, port: int, *args: object, **kwargs: object) -> list:
        if name != host or not addresses:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in addresses]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
