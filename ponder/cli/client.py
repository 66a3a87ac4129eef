"""The commands that talk to a running API over HTTP: ``ponder submit`` and ``ponder batch``.
They need ``--api-url`` (PONDER_API_URL) and ``--api-key`` (PONDER_API_KEY), never the
database. Progress goes to stderr, so stdout stays clean for ids and results."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

batch_app = typer.Typer(no_args_is_help=True, help="Batches: submit, status, results, retry.")
err = Console(stderr=True, soft_wrap=True)
ENDED = {"succeeded", "needs_review", "failed", "cancelled", "expired"}
DOCUMENT_SUFFIXES = (".txt", ".md")

ApiUrl = Annotated[
    str, typer.Option("--api-url", envvar="PONDER_API_URL", help="Base URL of the Ponder API.")
]
ApiKey = Annotated[
    str, typer.Option("--api-key", envvar="PONDER_API_KEY", help="API key (Bearer).")
]


class Api:
    def __init__(self, url: str, key: str) -> None:
        if not key:
            err.print("[red]error:[/red] set --api-key or PONDER_API_KEY (`ponder keys create`)")
            raise typer.Exit(2)
        self.http = httpx.Client(
            base_url=url.rstrip("/"), headers={"Authorization": f"Bearer {key}"}, timeout=60
        )

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.http.request(method, path, **kwargs)
        _check(response)
        return response.json()


def _check(response: httpx.Response) -> None:
    """Print the API's error (and every listed bad line) and exit 1 on a 4xx or 5xx."""
    if response.is_success:
        return
    try:
        body = response.json()
    except ValueError:
        body = {"error": response.text or response.reason_phrase}
    problems = body.get("detail", {}).get("errors", [])
    message = body.get("error")
    if problems:  # the message lists the first few; list them all, one per line
        message = f"batch rejected, nothing was submitted: {len(problems)} invalid line(s)"
    err.print(f"[red]error {response.status_code}:[/red] {message}", highlight=False)
    for problem in problems:
        err.print(f"  line {problem['line']}: {problem['error']}", highlight=False)
    raise typer.Exit(1)


def _exit_code(statuses: list[str]) -> int:
    """0: every job succeeded; 2: none failed but some need review; 1: some failed."""
    if any(s in ("failed", "cancelled", "expired") for s in statuses):
        return 1
    return 2 if "needs_review" in statuses else 0


def submit(
    files: Annotated[list[Path], typer.Argument(exists=True, dir_okay=False, readable=True)],
    task: Annotated[str, typer.Option(help="Task type (`ponder tasks`).")],
    api_url: ApiUrl = "http://127.0.0.1:8000",
    api_key: ApiKey = "",
    strategy: Annotated[str | None, typer.Option(help="Strategy (`ponder strategies`).")] = None,
    n: Annotated[int | None, typer.Option(help="Samples per job.")] = None,
    priority: Annotated[int, typer.Option(min=0, max=9)] = 5,
    email: Annotated[str | None, typer.Option(help="Email when each job ends.")] = None,
    wait: Annotated[
        bool, typer.Option(help="Wait for the jobs, with a live progress bar.")
    ] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait with --wait.")] = 3600,
) -> None:
    """Submit text files as jobs; print `file<TAB>job id` for each."""
    api = Api(api_url, api_key)
    job_ids: dict[str, Path] = {}
    for path in files:
        body = {"task": task, "document": _read_text(path), "strategy": strategy, "n": n,
                "priority": priority, "email": email}  # fmt: skip
        job = api.call("POST", "/v1/jobs", json={k: v for k, v in body.items() if v is not None})
        job_ids[job["id"]] = path
        typer.echo(f"{path}\t{job['id']}")
    if wait:
        statuses = _wait_for_jobs(api, job_ids, timeout)
        raise typer.Exit(_exit_code(list(statuses.values())))


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        err.print(f"[red]error:[/red] {path} is not UTF-8 text")
        raise typer.Exit(1) from exc


def _wait_for_jobs(api: Api, job_ids: dict[str, Path], timeout: float) -> dict[str, str]:
    statuses: dict[str, str] = {}
    columns = (TextColumn("jobs"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    deadline = time.monotonic() + timeout
    with Progress(*columns, console=err, transient=False) as progress:
        bar = progress.add_task("jobs", total=len(job_ids))
        while len(statuses) < len(job_ids):
            if time.monotonic() > deadline:
                err.print(f"[yellow]gave up waiting after {timeout:.0f}s[/yellow]")
                raise typer.Exit(3)
            for job_id in [j for j in job_ids if j not in statuses]:
                job = api.call("GET", f"/v1/jobs/{job_id}")
                if job["status"] in ENDED:
                    statuses[job_id] = job["status"]
            progress.update(bar, completed=len(statuses))
            if len(statuses) < len(job_ids):
                time.sleep(1.0)
    for job_id, path in job_ids.items():
        err.print(f"{path}: {statuses[job_id]}", highlight=False)
    return statuses


def _jsonl_from_dir(
    folder: Path, task: str, strategy: str | None, n: int | None
) -> Iterator[bytes]:
    """One line per text file, built as the upload streams: no file is held past its line."""
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        if path.suffix.lower() not in DOCUMENT_SUFFIXES or path.name.startswith("."):
            continue
        item = {"custom_id": str(path.relative_to(folder)), "task": task,
                "document": _read_text(path), "strategy": strategy, "n": n}  # fmt: skip
        yield (json.dumps({k: v for k, v in item.items() if v is not None}) + "\n").encode()


class _StreamedPart:
    """A file-like view of lines built as the upload streams, for httpx's multipart encoder
    (which reads parts with ``read(size)``): no document is held past its line."""

    def __init__(self, lines: Iterator[bytes]) -> None:
        self._lines = lines
        self._buffer = b""

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._buffer) < size:
            line = next(self._lines, None)
            if line is None:
                break
            self._buffer += line
        if size < 0:
            size = len(self._buffer)
        chunk, self._buffer = self._buffer[:size], self._buffer[size:]
        return chunk


@batch_app.command("submit")
def batch_submit(
    source: Annotated[
        Path, typer.Argument(exists=True, help="A folder of .txt/.md files or a JSONL file.")
    ],
    api_url: ApiUrl = "http://127.0.0.1:8000",
    api_key: ApiKey = "",
    task: Annotated[str | None, typer.Option(help="Task for a folder's files.")] = None,
    strategy: Annotated[str | None, typer.Option(help="Strategy for a folder's files.")] = None,
    n: Annotated[int | None, typer.Option(help="Samples for a folder's files.")] = None,
    name: Annotated[str | None, typer.Option(help="A name for the batch.")] = None,
    email: Annotated[str | None, typer.Option(help="Where the batch report goes.")] = None,
    webhook_endpoint: Annotated[
        str | None, typer.Option(help="Endpoint id for the report.")
    ] = None,
    priority: Annotated[int | None, typer.Option(min=0, max=9)] = None,
    idempotency_key: Annotated[str | None, typer.Option(help="Submit at most once.")] = None,
) -> None:
    """Submit a batch; print its id. A folder becomes one item per file (custom_id: its path)."""
    if source.is_dir() and not task:
        err.print("[red]error:[/red] --task is needed to submit a folder")
        raise typer.Exit(2)
    options = {"name": name, "email": email, "webhook_endpoint_id": webhook_endpoint,
               "priority": priority}  # fmt: skip
    headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
    api = Api(api_url, api_key)
    with ExitStack() as stack:
        if source.is_dir():
            items: Any = _StreamedPart(_jsonl_from_dir(source, task or "", strategy, n))
        else:
            items = stack.enter_context(source.open("rb"))
        # Options travel as form fields next to the items, never in the URL: URLs are kept
        # in access logs, and metadata there would be logged patient data.
        batch = api.call(
            "POST", "/v1/batches", headers=headers,
            data={k: str(v) for k, v in options.items() if v is not None},
            files={"file": ("items.jsonl", items, "application/jsonl")},
        )  # fmt: skip
    typer.echo(batch["id"])
    err.print(f"batch {batch['id']}: {batch['total']} items queued", highlight=False)


def _counts_table(batch: dict[str, Any]) -> Table:
    table = Table(title=f"batch {batch['id']} — {batch['status']}", title_justify="left")
    for state in batch["counts"]:
        table.add_column(state.replace("_", " "), justify="right")
    table.add_column("total", justify="right")
    table.add_row(*(str(v) for v in batch["counts"].values()), str(batch["total"]))
    return table


@batch_app.command("status")
def batch_status(
    batch_id: str,
    api_url: ApiUrl = "http://127.0.0.1:8000",
    api_key: ApiKey = "",
    watch: Annotated[bool, typer.Option(help="Refresh the counts live until it ends.")] = True,
    interval: Annotated[float, typer.Option(help="Seconds between refreshes.")] = 2.0,
) -> None:
    """Counts per state; live until the batch ends (--no-watch: once)."""
    api = Api(api_url, api_key)
    batch = api.call("GET", f"/v1/batches/{batch_id}")
    console = Console()
    if watch and not batch["ended"]:
        with Live(_counts_table(batch), console=console, auto_refresh=False) as live:
            while not batch["ended"]:
                time.sleep(interval)
                batch = api.call("GET", f"/v1/batches/{batch_id}")
                live.update(_counts_table(batch), refresh=True)
    else:
        console.print(_counts_table(batch))
    raise typer.Exit(_exit_code([s for s, count in batch["counts"].items() if count]))


@batch_app.command("results")
def batch_results(
    batch_id: str,
    api_url: ApiUrl = "http://127.0.0.1:8000",
    api_key: ApiKey = "",
    partial: Annotated[bool, typer.Option(help="While it runs: the items ended so far.")] = False,
) -> None:
    """Stream the results as JSONL to stdout: `ponder batch results ID > out.jsonl`."""
    api = Api(api_url, api_key)
    out = typer.get_binary_stream("stdout")
    params = {"partial": "true"} if partial else {}
    with api.http.stream("GET", f"/v1/batches/{batch_id}/results", params=params) as response:
        if not response.is_success:
            response.read()
            _check(response)
        for chunk in response.iter_bytes():
            out.write(chunk)
    out.flush()


@batch_app.command("retry")
def batch_retry(
    batch_id: str, api_url: ApiUrl = "http://127.0.0.1:8000", api_key: ApiKey = ""
) -> None:
    """Run the failed items of an ended batch again."""
    answer = Api(api_url, api_key).call("POST", f"/v1/batches/{batch_id}/retry")
    typer.echo(f"{answer['retried']} failed items queued again (round {answer['batch']['round']})")


@batch_app.command("cancel")
def batch_cancel(
    batch_id: str, api_url: ApiUrl = "http://127.0.0.1:8000", api_key: ApiKey = ""
) -> None:
    """Cancel the queued items; running items finish."""
    batch = Api(api_url, api_key).call("POST", f"/v1/batches/{batch_id}/cancel")
    typer.echo(f"batch {batch['id']}: {batch['status']}")
