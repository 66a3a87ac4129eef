"""``ponder demo``: the sample documents through the whole pipeline — API, PostgreSQL, Celery
on Redis, a worker with the in-process engine, verifiers, a signed webhook and an email —
then a report of what happened. Starts what it needs and stops it again."""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from ponder.cli.devservers import SmtpSink, WebhookReceiver, free_port
from ponder.cli.localrun import (
    ROOT,
    start_api,
    start_quarantine_worker,
    start_worker,
    stop,
    wait_ready,
)
from ponder.config import get_settings
from ponder.db import session_scope
from ponder.notify.webhooks import sign
from ponder.tenants import issue_key

SAMPLES = [
    ("contract_review", ROOT / "samples" / "contract_msa.txt"),
    ("medrec_extraction", ROOT / "samples" / "clinic_note.md"),
]
TERMINAL = {"succeeded", "needs_review", "failed", "cancelled", "expired"}


def run_demo(*, n: int = 4, timeout_s: float = 900.0) -> int:
    settings = get_settings()
    receiver = WebhookReceiver().start()
    smtp = SmtpSink().start()
    with session_scope() as session:
        issued = issue_key(session=session, tenant_name="demo")
        secret = issued.tenant.webhook_secret
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        "PONDER_NOTIFY__WEBHOOK_ALLOW_HOSTS": '["127.0.0.1"]',
        "PONDER_NOTIFY__SMTP_PORT": str(smtp.port),
        "PONDER_NOTIFY__PUBLIC_BASE_URL": base,
        "PONDER_WORKER__HEARTBEAT_S": "5",
    }
    logdir = Path(tempfile.mkdtemp(prefix="ponder-demo-"))
    api_log = open(logdir / "api.log", "wb")  # noqa: SIM115 - closed in finally
    worker_log = open(logdir / "worker.log", "wb")  # noqa: SIM115
    api = start_api(env, port, api_log)
    worker = start_worker(env, worker_log)
    quarantine = start_quarantine_worker(env, worker_log)
    print(f"api on {base}, worker started; logs in {logdir}")
    try:
        wait_ready(base)
        client = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {issued.key}"})
        started = time.monotonic()
        job_ids = []
        for task, path in SAMPLES:
            r = client.post(
                "/v1/jobs",
                json={
                    "task": task,
                    "document": path.read_text(),
                    "strategy": "best_of_n",
                    "n": n,
                    "webhook_url": receiver.url,
                    "email": "reviewer@example.org",
                    "metadata": {"sample": path.name},
                    # The demo shows the pipeline run, every time: not an earlier run's answer.
                    "cache": "refresh",
                },
            )
            r.raise_for_status()
            job_ids.append(r.json()["id"])
            print(f"submitted {path.name} as {task}: job {job_ids[-1]}")
        jobs = _wait(client, job_ids, started, timeout_s)
        # Notifications are sent after the terminal state commits; give them a moment.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (
            len(receiver.received) < len(job_ids) or len(smtp.messages) < len(job_ids)
        ):
            time.sleep(0.5)
        for job in jobs:
            _report(client, job)
        ok = _report_notifications(receiver, smtp, secret, job_ids)
        all_ended = all(j["status"] in TERMINAL for j in jobs)
        print(f"\ntotal wall time {time.monotonic() - started:.1f}s")
        print("next: `make review` opens the review workspace on these jobs (URL and sign-in)")
        return 0 if all_ended and ok else 1
    finally:
        stop(worker)
        stop(quarantine)
        stop(api)
        receiver.stop()
        smtp.stop()
        api_log.close()
        worker_log.close()
        _ = settings


def _wait(
    client: httpx.Client, job_ids: list[str], started: float, timeout_s: float
) -> list[dict[str, Any]]:
    last = ""
    while True:
        jobs = [client.get(f"/v1/jobs/{jid}").json() for jid in job_ids]
        line = "  ".join(f"{j['task']}: {j['status']}" for j in jobs)
        if sys.stdout.isatty():  # one line, rewritten in place
            sys.stdout.write(f"\r[{time.monotonic() - started:6.1f}s] {line}    ")
        elif line != last:  # a log: one line per change
            sys.stdout.write(f"[{time.monotonic() - started:6.1f}s] {line}\n")
        last = line
        sys.stdout.flush()
        if all(j["status"] in TERMINAL for j in jobs):
            print()
            return jobs
        if time.monotonic() - started > timeout_s:
            print(f"\ntimed out after {timeout_s:.0f}s")
            return jobs
        time.sleep(1.0)


def _report(client: httpx.Client, job: dict[str, Any]) -> None:
    trace = client.get(f"/v1/jobs/{job['id']}/trace").json()
    result = job.get("result") or {}
    print("\n" + "=" * 78)
    print(f"job {job['id']}  task={job['task']}  status={job['status'].upper()}")
    print(
        f"strategy {job['config']['strategy']['name']} n={job['config']['strategy']['n']}  "
        f"attempts={job['attempts']}  wall={result.get('wall_s', 0):.1f}s  "
        f"engine={job['engine_wall_s']:.1f}s"
    )
    t = job["tokens"]
    print(
        f"tokens: prompt={t['prompt']} (cached {t['cached_prompt']})  completion={t['completion']}"
    )
    if job.get("error"):
        print(f"error: {job['error']}")
    print(f"selection: {result.get('rationale')}")
    print("selected answer:")
    print(json.dumps(result.get("output"), indent=2)[:2500])
    print("candidates:")
    for c in trace["candidates"]:
        mark = "*" if c["selected"] else " "
        lp = "n/a" if c["mean_logprob"] is None else f"{c['mean_logprob']:.3f}"
        print(
            f" {mark} #{c['idx']} score={c['score']:.2f} required_passed={c['passed_required']} "
            f"tokens={c['completion_tokens']} mean_logprob={lp}"
        )
        for v in c["verdicts"]:
            status = "pass" if v["passed"] else "FAIL"
            req = "required" if v["required"] else "advisory"
            first = f" - {v['findings'][0][:90]}" if v["findings"] else ""
            print(f"      {status} {v['verifier']:22} {v['score']:.2f} {req}{first}")


def _report_notifications(
    receiver: WebhookReceiver, smtp: SmtpSink, secret: str, job_ids: list[str]
) -> bool:
    print("\n" + "=" * 78)
    print(f"webhook deliveries received: {len(receiver.received)}")
    ok = True
    for req in receiver.received:
        h = {k.lower(): v for k, v in req.headers.items()}
        expected = sign(secret, h["webhook-id"], int(h["webhook-timestamp"]), req.body)
        valid = expected in h["webhook-signature"].split()
        ok &= valid
        data = json.loads(req.body)["data"]
        print(
            f"  webhook-id={h['webhook-id']} job={data['job_id']} status={data['status']} "
            f"signature={'valid' if valid else 'INVALID'}"
        )
    print(f"emails received: {len(smtp.messages)}")
    for msg in smtp.messages:
        print(f"  to={msg['To']} subject={msg['Subject']}")
    got = {json.loads(r.body)["data"]["job_id"] for r in receiver.received}
    return ok and got == set(job_ids) and len(smtp.messages) >= len(job_ids)
