import email
import email.policy
import smtplib
import socket
import ssl
import subprocess
from collections.abc import Iterator

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from ponder.cli.devservers import free_port
from ponder.config import NotifySettings
from ponder.notify.email import render_batch_email, render_job_email, send_email


def _context(**overrides: object) -> dict[str, object]:
    return {
        "job_id": "job_42",
        "status": "succeeded",
        "task": "contract_review",
        "summary": "All 4 checks passed.",
        "link": "https://ponder.example.com/jobs/job_42",
        "failing_checks": [],
        "tokens": 1234,
        "cost": 0.0123,
    } | overrides


class _Collector:
    def __init__(self) -> None:
        self.envelopes: list = []

    async def handle_DATA(self, server, session, envelope) -> str:  # aiosmtpd's hook name
        self.envelopes.append(envelope)
        return "250 OK"


@pytest.fixture
def smtp_server() -> Iterator[tuple[NotifySettings, _Collector]]:
    """A real SMTP server (aiosmtpd) on 127.0.0.1 and a free port."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    collector = _Collector()
    controller = Controller(collector, hostname="127.0.0.1", port=port)
    controller.start()
    yield NotifySettings(smtp_host="127.0.0.1", smtp_port=port), collector
    controller.stop()


def test_subject_names_job_status_and_task() -> None:
    subject, _, _ = render_job_email(_context())
    assert subject == "[Ponder] job job_42 succeeded — contract_review"


def test_unknown_status_is_refused() -> None:
    with pytest.raises(ValueError, match="status"):
        render_job_email(_context(status="running"))


def test_failing_checks_are_named_and_counted_in_both_parts() -> None:
    checks = [{"verifier": "grounding", "finding_count": 2}]
    _, text, html = render_job_email(_context(status="needs_review", failing_checks=checks))
    for part in (text, html):
        assert "grounding: 2 findings" in part
        assert "quote 1 not found" not in part


def test_html_escapes_summary() -> None:
    _, text, html = render_job_email(_context(summary="<script>alert(1)</script>"))
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script>alert(1)</script>" in text


def test_cost_is_shown_or_marked_not_priced() -> None:
    assert "0.0123" in render_job_email(_context())[1]
    assert "not priced" in render_job_email(_context(cost=None))[1]


def test_send_email_delivers_text_and_html_parts(
    smtp_server: tuple[NotifySettings, _Collector],
) -> None:
    settings, collector = smtp_server
    subject, text, html = render_job_email(_context(summary="<b>bold</b> move"))
    send_email(settings, to="owner@example.com", subject=subject, text=text, html=html)

    (envelope,) = collector.envelopes
    assert envelope.mail_from == settings.mail_from
    assert envelope.rcpt_tos == ["owner@example.com"]
    message = email.message_from_bytes(envelope.content, policy=email.policy.default)
    assert message["Subject"] == subject
    assert message.get_content_type() == "multipart/alternative"
    plain = message.get_body(preferencelist=("plain",))
    rich = message.get_body(preferencelist=("html",))
    assert plain is not None and "<b>bold</b> move" in plain.get_content()
    assert rich is not None and "&lt;b&gt;bold&lt;/b&gt; move" in rich.get_content()


def test_send_email_raises_when_server_is_unreachable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = NotifySettings(smtp_host="127.0.0.1", smtp_port=port)
    with pytest.raises(OSError):
        send_email(settings, to="owner@example.com", subject="s", text="t", html="<p>h</p>")


def test_each_job_outcome_has_its_own_template() -> None:
    texts = {
        status: render_job_email(_context(status=status))[1]
        for status in ("succeeded", "needs_review", "failed")
    }
    assert "passed every required check" in texts["succeeded"]
    assert "a person should review it" in texts["needs_review"]
    assert "There is no answer" in texts["failed"]


def _batch_data(**overrides: object) -> dict[str, object]:
    counts = {"queued": 0, "running": 0, "succeeded": 7, "needs_review": 1, "failed": 2,
              "cancelled": 0, "expired": 0}  # fmt: skip
    failures = [
        {"custom_id": f"note-{i}", "job_id": f"job-{i}", "status": "failed",
         "error": "engine refused", "link": f"https://ponder.example.com/v1/jobs/job-{i}"}
        for i in range(2)
    ]  # fmt: skip
    return {
        "batch_id": "batch_1",
        "name": "nightly-legal",
        "source": "nightly",
        "status": "completed_with_failures",
        "round": 1,
        "total": 10,
        "counts": counts,
        "failures": failures,
        "failure_count": 2,
        "rejected_files": [{"file": "scan.txt", "error": "not UTF-8 text"}],
        "metadata": {},
        "links": {
            "batch": "https://p/v1/batches/batch_1",
            "results": "https://p/v1/batches/batch_1/results",
        },  # fmt: skip
    } | overrides


def test_batch_report_gives_counts_failures_and_links() -> None:
    subject, text, html = render_batch_email(_batch_data())
    assert (
        subject == "[Ponder] batch nightly-legal ended with failures — 7 of 10 succeeded, 2 failed"
    )
    for part in (text, html):
        assert "note-0" in part and "note-1" in part and "engine refused" in part
        assert "scan.txt" in part
        assert "https://p/v1/batches/batch_1/results" in part
    assert "succeeded:    7" in text and "needs review: 1" in text and "failed:       2" in text


def test_batch_report_says_how_many_failures_are_not_listed() -> None:
    failures = [
        {"custom_id": f"n{i}", "job_id": f"j{i}", "status": "failed", "error": "x", "link": "l"}
        for i in range(25)
    ]
    _, text, _ = render_batch_email(_batch_data(failures=failures, failure_count=140))
    assert "- n19 (j19)" in text and "n20" not in text
    assert "and 120 more" in text


def test_batch_report_html_escapes_custom_ids() -> None:
    failures = [{"custom_id": "<img src=x>", "job_id": "j", "status": "failed", "error": "e",
                 "link": "l"}]  # fmt: skip
    _, _, html = render_batch_email(_batch_data(failures=failures, failure_count=1))
    assert "<img src=x>" not in html and "&lt;img src=x&gt;" in html


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """A self-signed certificate for 127.0.0.1: (cert file, key file)."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = str(folder / "cert.pem"), str(folder / "key.pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out",
         cert, "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


def _authenticator(server, session, envelope, mechanism, auth_data) -> AuthResult:
    ok = auth_data.login == b"ponder" and auth_data.password == b"s3cret"
    return AuthResult(success=ok, handled=False)


@pytest.fixture
def tls_smtp_server(
    certificate: tuple[str, str],
) -> Iterator[tuple[NotifySettings, _Collector]]:
    """A real SMTP server that requires STARTTLS and a login."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    port, collector = free_port(), _Collector()
    controller = Controller(collector, hostname="127.0.0.1", port=port, tls_context=context,
                            require_starttls=True, auth_required=True,
                            authenticator=_authenticator)  # fmt: skip
    controller.start()
    settings = NotifySettings(smtp_host="127.0.0.1", smtp_port=port, smtp_starttls=True,
                              smtp_ca_file=certificate[0], smtp_user="ponder",
                              smtp_password="s3cret")  # fmt: skip
    yield settings, collector
    controller.stop()


def test_starttls_with_login_delivers(tls_smtp_server) -> None:
    settings, collector = tls_smtp_server
    send_email(settings, to="owner@example.com", subject="s", text="t", html="<p>h</p>")
    (envelope,) = collector.envelopes
    assert envelope.rcpt_tos == ["owner@example.com"]


def test_a_wrong_password_raises(tls_smtp_server) -> None:
    settings, _ = tls_smtp_server
    wrong = settings.model_copy(update={"smtp_password": "guess"})
    with pytest.raises(smtplib.SMTPAuthenticationError):
        send_email(wrong, to="owner@example.com", subject="s", text="t", html="<p>h</p>")


def test_an_untrusted_certificate_is_refused(tls_smtp_server) -> None:
    settings, collector = tls_smtp_server
    untrusted = settings.model_copy(update={"smtp_ca_file": ""})
    with pytest.raises(ssl.SSLCertVerificationError):
        send_email(untrusted, to="owner@example.com", subject="s", text="t", html="<p>h</p>")
    assert collector.envelopes == []


def test_implicit_tls_delivers(certificate: tuple[str, str]) -> None:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    port, collector = free_port(), _Collector()
    controller = Controller(collector, hostname="127.0.0.1", port=port, ssl_context=context)
    controller.start()
    try:
        settings = NotifySettings(smtp_host="127.0.0.1", smtp_port=port, smtp_ssl=True,
                                  smtp_ca_file=certificate[0])  # fmt: skip
        send_email(settings, to="owner@example.com", subject="s", text="t", html="<p>h</p>")
    finally:
        controller.stop()
    assert len(collector.envelopes) == 1


def test_production_refuses_smtp_credentials_without_tls() -> None:
    from pydantic import ValidationError

    from ponder.config import Settings

    with pytest.raises(ValidationError, match="smtp_ssl or smtp_starttls"):
        Settings(environment="production", notify=NotifySettings(smtp_user="u"))
