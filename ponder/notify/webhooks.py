"""Standard Webhooks (https://www.standardwebhooks.com/): signing, SSRF-safe delivery, backoff."""

from __future__ import annotations

import base64
import email.utils
import hashlib
import hmac
import ipaddress
import random
import secrets
import socket
import ssl
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

SECRET_PREFIX = "whsec_"
USER_AGENT = "Ponder-Webhooks/1"


def generate_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode("ascii")


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)  # or ValueError
    if not key:
        raise ValueError("webhook secret is empty")
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def signed_headers(
    secret: str | Sequence[str], msg_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    """Pass several secrets during a rotation: one signature each, space-separated, and the
    receiver accepts the message if any of them verifies."""
    keys = [secret] if isinstance(secret, str) else list(secret)
    if not keys:
        raise ValueError("at least one webhook secret is required")
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(sign(key, msg_id, timestamp, body) for key in keys),
        "content-type": "application/json",
    }


class UnsafeWebhookURL(ValueError):
    """The URL may not receive webhooks; the message says what to change."""


# Special-purpose ranges some Python versions call global: 192.0.0.0/24 holds Oracle Cloud's
# metadata service (192.0.0.192); 64:ff9b::/96 (NAT64) reaches the IPv4 address it embeds.
_SPECIAL_PURPOSE = (ipaddress.ip_network("192.0.0.0/24"),)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def _refusal(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Why ``ip`` must not be connected to, or None if it is a public address."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            # ::ffff:127.0.0.1, 2002:7f00:1:: and 64:ff9b::7f00:1 all reach 127.0.0.1
            return _refusal(embedded)
    if any(ip in network for network in _SPECIAL_PURPOSE):
        return "special-purpose"
    for kind in ("loopback", "unspecified", "link_local", "multicast", "private", "reserved"):
        if getattr(ip, f"is_{kind}"):
            return kind.replace("_", "-")
    return None if ip.is_global else "non-public (shared or special-purpose)"


def check_webhook_url(url: str, *, allow_hosts: Sequence[str] = ()) -> list[str]:
    """Return the addresses a webhook URL's host resolves to, if all of them are public.

    Checking resolved addresses also catches odd spellings of 127.0.0.1 (``2130706433``,
    ``0x7f000001``, ``0177.0.0.1``, ``127.1``). A host in ``allow_hosts``, as written in the
    URL, skips the range check: for development and tests only."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError as exc:
        raise UnsafeWebhookURL(f"webhook URL is not valid ({exc}); use https://host/path") from exc
    if parts.scheme not in ("http", "https"):
        scheme = f"'{parts.scheme}:'" if parts.scheme else "no scheme"
        raise UnsafeWebhookURL(f"webhook URL must start with https:// or http://, not {scheme}")
    if "@" in parts.netloc:
        raise UnsafeWebhookURL("remove the user name and password from the webhook URL")
    if not host:
        raise UnsafeWebhookURL("webhook URL has no host; use https://host/path")
    try:
        infos = socket.getaddrinfo(host, port or 443, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise UnsafeWebhookURL(f"cannot resolve webhook host {host!r}; check its spelling") from exc
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if host in {allowed.strip("[]").lower() for allowed in allow_hosts}:
        return addresses
    for address in addresses:
        if reason := _refusal(ipaddress.ip_address(address.split("%")[0])):
            raise UnsafeWebhookURL(
                f"webhook host {host!r} resolves to {address}, a {reason} address; "
                "use a host that is reachable from the public internet"
            )
    return addresses


@dataclass(frozen=True)
class DeliveryOutcome:
    """One delivery attempt. The caller's policy: ``delivered`` (2xx) ends it; ``gone`` (410,
    the receiver asked to stop) disables the endpoint; every other failure (3xx, other 4xx, 5xx,
    timeouts, connection errors, refusals) is retried on the ``retry_delay`` schedule (about three
    days by default), as a misconfigured receiver is often fixed within that window."""

    status_code: int | None
    """The receiver's HTTP status; None when no response came back."""
    error: str | None
    """Why the attempt failed, without any body content; None when delivered."""
    duration_ms: int
    retry_after_s: float | None
    """From ``Retry-After`` on a 429 or 503: a lower bound for the next delay."""

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    @property
    def gone(self) -> bool:
        return self.status_code == 410


def _retry_after_s(value: str) -> float | None:
    """Seconds from ``Retry-After`` (a number of seconds or an HTTP date); None if absent."""
    if value.strip().isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when.replace(tzinfo=when.tzinfo or UTC) - datetime.now(UTC)).total_seconds())


def _elapsed_ms(started: float) -> int:
    return round((time.monotonic() - started) * 1000)


def _describe(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"[:200] if str(exc) else type(exc).__name__


def _response_outcome(response: httpx.Response, started: float) -> DeliveryOutcome:
    status = response.status_code
    error = None if 200 <= status < 300 else f"HTTP {status}"
    if 300 <= status < 400:
        error = f"HTTP {status}: redirects are not followed"
    retry_after = response.headers.get("retry-after", "") if status in (429, 503) else ""
    return DeliveryOutcome(status, error, _elapsed_ms(started), _retry_after_s(retry_after))


class AttemptDeadline:
    """A wall-clock deadline for one delivery attempt: connect, TLS, sending the request and
    reading the response's headers together.

    httpx's timeouts apply to each socket operation, so a receiver that sends one byte every
    few seconds never trips them and holds a delivery worker as long as it likes. Every socket
    operation of the attempt goes through :class:`_DeadlineBackend`, which gives it at most the
    time left and refuses it once none is left: the attempt ends at the deadline whatever the
    receiver's pace."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.ends_at = time.monotonic() + seconds

    def left(self) -> float:
        return self.ends_at - time.monotonic()

    def passed(self) -> bool:
        return self.left() <= 0

    def clamp(self, timeout: float | None, error: type[Exception]) -> float:
        """The timeout for the next socket operation; raises ``error`` once time is up."""
        left = self.left()
        if left <= 0:
            raise error(f"attempt deadline of {self.seconds:g}s passed")
        return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    def __init__(self, stream: httpcore.NetworkStream, deadline: AttemptDeadline) -> None:
        self._stream = stream
        self._deadline = deadline

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, self._deadline.clamp(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, self._deadline.clamp(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        stream = self._stream.start_tls(
            ssl_context, server_hostname, self._deadline.clamp(timeout, httpcore.ConnectTimeout)
        )
        return _DeadlineStream(stream, self._deadline)

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _DeadlineBackend(httpcore.SyncBackend):
    def __init__(self, deadline: AttemptDeadline) -> None:
        self._deadline = deadline

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        timeout = self._deadline.clamp(timeout, httpcore.ConnectTimeout)
        stream = super().connect_tcp(host, port, timeout, local_address, socket_options)
        return _DeadlineStream(stream, self._deadline)


class _DeadlineTransport(httpx.HTTPTransport):
    """httpx's transport with every socket operation under ``deadline``. httpx has no public
    hook for a network backend, so the connection pool is replaced (httpx 0.28's ``_pool``);
    ``tests/notify/test_webhook_deadline.py`` fails if that stops taking effect."""

    def __init__(self, deadline: AttemptDeadline) -> None:
        super().__init__(trust_env=False)
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=1,
            network_backend=_DeadlineBackend(deadline),
        )


def deliver(
    url: str,
    body: bytes,
    headers: dict[str, str],
    *,
    timeout_s: float,
    allow_hosts: Sequence[str],
    deadline_s: float | None = None,
) -> DeliveryOutcome:
    """POST ``body`` once, without following redirects; network errors become an outcome.

    ``timeout_s`` bounds each socket operation, ``deadline_s`` (``timeout_s`` when not given)
    the whole attempt: every address tried, connect, TLS, request and response headers. A
    receiver that answers slowly costs a worker at most ``deadline_s``, and the attempt is a
    failure whose error says so. The response body is never read: it is not needed and may be
    huge or endless.

    The URL is checked again (DNS may have changed) and the connection goes to a checked address
    with the original ``Host`` and TLS server name, so a second DNS answer cannot redirect it
    (DNS rebinding). Proxies from the environment are ignored for the same reason."""
    started = time.monotonic()
    deadline_s = timeout_s if deadline_s is None else deadline_s
    deadline = AttemptDeadline(deadline_s)
    try:
        addresses = check_webhook_url(url, allow_hosts=allow_hosts)
        target = httpx.URL(url)
    except (UnsafeWebhookURL, httpx.InvalidURL) as exc:
        return DeliveryOutcome(None, f"refused: {exc}", _elapsed_ms(started), None)
    request_headers = {"user-agent": USER_AGENT, **headers, "host": target.netloc.decode("ascii")}
    sni = {"sni_hostname": target.host}
    last_error = "refused: no address to connect to"
    client = httpx.Client(
        headers=request_headers,
        timeout=timeout_s,
        follow_redirects=False,
        trust_env=False,
        transport=_DeadlineTransport(deadline),
    )
    with client:
        for address in addresses:
            pinned = target.copy_with(host=address)
            try:
                with client.stream("POST", pinned, content=body, extensions=sni) as response:
                    return _response_outcome(response, started)
            except httpx.HTTPError as exc:
                if deadline.passed():
                    error = f"deadline: no response within {deadline_s:g}s ({type(exc).__name__})"
                    return DeliveryOutcome(None, error, _elapsed_ms(started), None)
                if not isinstance(exc, httpx.ConnectError):
                    return DeliveryOutcome(None, _describe(exc), _elapsed_ms(started), None)
                last_error = _describe(exc)  # try the host's next address
    return DeliveryOutcome(None, last_error, _elapsed_ms(started), None)


def endpoint_key(url: str) -> str:
    """What delivery concurrency is limited per: the receiver's scheme, host and port. A slow
    receiver is slow for every path it serves, so limiting per URL would let one host holding
    many URLs (one per job, say) take every worker."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{(parts.hostname or '').lower()}:{parts.port or ''}"


def retry_delay(attempt: int, *, schedule: Sequence[float], jitter: float) -> float | None:
    """Seconds to wait after failed attempt ``attempt`` (from 1): the schedule's entry for it,
    scaled by a random factor in [1 - jitter, 1 + jitter] so that failed deliveries do not retry
    in step; None when the schedule is used up."""
    if attempt < 1:
        raise ValueError("attempt counts from 1")
    if attempt > len(schedule):
        return None
    return schedule[attempt - 1] * random.uniform(1 - jitter, 1 + jitter)
