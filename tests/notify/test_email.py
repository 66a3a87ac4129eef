import email
import email.policy
import socket
from collections.abc import Iterator

import pytest
from aiosmtpd.controller import Controller

from ponder.config import NotifySettings
from ponder.notify.email import render_job_email, send_email


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
