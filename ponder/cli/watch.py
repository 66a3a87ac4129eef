"""``ponder watch JOB_ID``: follow a job's live events (``GET /v1/jobs/{id}/events``) in the
terminal. Each event is a line on stdout (``seq``, kind, its counts and scores); a progress
line on stderr counts samples and verdicts. A dropped connection resumes with
``Last-Event-ID``. The exit code is the job's: 0 succeeded (or reviewed), 2 needs_review,
1 failed, cancelled or expired, 3 when the stream could not be followed to its end."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import typer

from ponder.cli.client import Api, ApiKey, ApiUrl, _check, _exit_code, err

RECONNECTS = 5
"""Connection losses in a row before giving up (each resumes after the last event seen)."""
GAVE_UP = 3


@dataclass
class SseEvent:
    event: str = "message"
    data: str = ""
    id: str | None = None


def parse_sse(lines: Iterator[str]) -> Iterator[SseEvent]:
    """Server-Sent Events from a stream's lines; comments (``: ping``) are skipped."""
    current = SseEvent()
    data: list[str] = []
    for line in lines:
        if not line:
            if data or current.id is not None:
                current.data = "\n".join(data)
                yield current
            current, data = SseEvent(), []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            current.event = value
        elif name == "data":
            data.append(value)
        elif name == "id":
            current.id = value


@dataclass
class Tally:
    """What the progress line shows: samples drawn and how their verdicts went."""

    samples: int = 0
    passed: int = 0
    events: int = 0
    kinds: list[str] = field(default_factory=list)

    def add(self, kind: str, data: dict[str, Any]) -> None:
        self.events += 1
        if kind == "samples":
            candidates = data.get("candidates", [])
            self.samples += len(candidates)
            self.passed += sum(1 for c in candidates if c.get("passed_required"))

    def line(self) -> str:
        return (
            f"{self.events} events · {self.samples} samples · {self.passed} passed every "
            f"required check · {self.samples - self.passed} did not"
        )


def describe(kind: str, data: dict[str, Any]) -> str:
    """One event as a line: ids, counts, verdicts and scores, never text the model wrote."""
    if kind == "samples":
        candidates = data.get("candidates", [])
        passed = sum(1 for c in candidates if c.get("passed_required"))
        scores = ", ".join(f"{c.get('score', 0):.2f}" for c in candidates)
        return (
            f"step {data.get('step')}: {len(candidates)} samples, {passed} passed; "
            f"scores [{scores}]; {data.get('completion_tokens', 0)} tokens"
        )
    if kind == "selection":
        ranking = data.get("ranking", [])
        best = ranking[0] if ranking else {}
        return (
            f"{data.get('status')}: candidate {best.get('step')}/{best.get('idx')} "
            f"score {best.get('score', 0):.2f} of {len(ranking)} ranked"
        )
    scalars = {k: v for k, v in data.items() if isinstance(v, bool | int | float)}
    return " ".join(f"{k}={v}" for k, v in scalars.items())


def watch(
    job_id: str,
    api_url: ApiUrl = "http://127.0.0.1:8000",
    api_key: ApiKey = "",
) -> None:
    """Follow a job's events live until it ends; exit 0 succeeded, 2 needs_review, 1 failed,
    cancelled or expired, 3 when the stream could not be followed."""
    api = Api(api_url, api_key)
    tally = Tally()
    with err.status(f"job {job_id}: waiting for events") as progress:
        status = _follow(api, job_id, tally, on_event=lambda: progress.update(tally.line()))
    err.print(f"job {job_id}: {status} — {tally.line()}", highlight=False)
    raise typer.Exit(_exit_code([status]))


def _follow(api: Api, job_id: str, tally: Tally, *, on_event: Callable[[], None]) -> str:
    """Print each event until the terminal one; its status. Reconnects resume after the last
    event seen."""
    last_id: str | None = None
    printed: set[Any] = set()
    losses = 0
    while True:
        headers = {"Accept": "text/event-stream"}
        if last_id is not None:
            headers["Last-Event-ID"] = last_id
        try:
            # No read timeout: the server sends a heartbeat while the job waits or thinks.
            with api.http.stream(
                "GET",
                f"/v1/jobs/{job_id}/events",
                headers=headers,
                timeout=httpx.Timeout(30, read=None),
            ) as response:
                if not response.is_success:
                    response.read()
                    _check(response)
                for event in parse_sse(response.iter_lines()):
                    losses = 0
                    data = json.loads(event.data) if event.data else {}
                    if event.event == "end":
                        status = str(data.get("status", "?"))
                        typer.echo(f"end\t{status}")
                        return status
                    last_id = event.id or last_id
                    if event.event == "verdict" or data.get("seq") in printed:
                        # The samples line shows the verdicts; a group cut off mid-way
                        # comes again whole after a reconnect.
                        continue
                    printed.add(data.get("seq"))
                    step = data.get("data", {})
                    tally.add(event.event, step)
                    typer.echo(f"{data.get('seq')}\t{event.event}\t{describe(event.event, step)}")
                    on_event()
        except httpx.TransportError as exc:
            err.print(f"[yellow]connection lost ({type(exc).__name__}); resuming[/yellow]")
        losses += 1
        if losses > RECONNECTS:
            err.print(f"[red]error:[/red] could not follow job {job_id}'s events to their end")
            raise typer.Exit(GAVE_UP)
        time.sleep(min(2.0**losses, 10.0))
