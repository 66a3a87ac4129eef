"""Soak under faults: a few hundred short jobs through the whole system while a worker is
killed with SIGKILL (and, with ``--sigterm-every``, stopped with SIGTERM) at intervals and
restarted, as a supervisor would; ``--poison N`` adds N jobs whose input kills the worker
process on every run. Reports jobs submitted, completed, duplicated and lost; the last two
must be 0, and only the poison jobs may fail (exit status 1 if not).

    OMP_NUM_THREADS=1 .venv/bin/python bench/soak.py --jobs 200 --kill-every 60 --poison 1

Everything is a real process on 127.0.0.1: the API (uvicorn), ``--workers`` Celery workers
with the in-process engine, one quarantine worker (one job at a time; never killed by the
soak itself, only by a poison job it runs), Celery beat running the reconciler, PostgreSQL
and Redis, and a webhook receiver that counts what arrives. It uses its own database
(``ponder_soak``, recreated) and Redis database 4. The poison is the test-only hook
``worker.test_poison_marker`` (refused in production).

Counted per submitted job, from PostgreSQL and the receiver:
- completed: ended ``succeeded`` or ``needs_review``; ``failed`` and ``cancelled`` are
  counted apart (a poison job ends ``failed`` once convicted in quarantine;
  ``failed_innocent`` counts the others that failed);
- lost: not ended when the run is over, or no row at all;
- duplicated: its outcome written more than once (more than one ``selection`` event), more
  than one notification row, or webhook deliveries under more than one ``webhook-id``.
  The same ``webhook-id`` arriving twice is at-least-once delivery working as specified
  (receivers deduplicate on it) and is counted apart as ``redelivered_same_id``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import IO, Any

SOAK_DB = "postgresql+psycopg://postgres@127.0.0.1:5432/ponder_soak"
SOAK_BROKER = "redis://127.0.0.1:6379/4"
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ["PONDER_DATABASE__URL"] = SOAK_DB
os.environ["PONDER_BROKER__URL"] = SOAK_BROKER
os.environ["PONDER_NOTIFY__WEBHOOK_ALLOW_HOSTS"] = '["127.0.0.1"]'

MEDS = [
    ("metoprolol", "50", "twice daily"),
    ("lisinopril", "10", "daily"),
    ("atorvastatin", "40", "at bedtime"),
    ("metformin", "500", "twice daily"),
    ("amlodipine", "5", "daily"),
    ("levothyroxine", "75", "every morning"),
]
ENDED = ("succeeded", "needs_review", "failed", "cancelled")
POISON_MARKER = "SOAK-POISON-PILL"


def document(i: int) -> str:
    """A one-line note written for this benchmark."""
    name, dose, when = MEDS[i % len(MEDS)]
    return f"Visit {i + 1}. Medications: {name} {dose} mg by mouth {when}."


def reset_database() -> None:
    import redis

    from ponder.cli.dbadmin import migrate, recreate_database

    recreate_database(SOAK_DB)
    migrate()
    redis.Redis.from_url(SOAK_BROKER).flushdb()


class Fleet:
    """The worker processes, killed and restarted (the supervisor's part). The last slot is
    the quarantine worker; the chaos picks among the others."""

    def __init__(self, env: dict[str, str], logdir: Path, count: int, concurrency: int) -> None:
        self.env, self.logdir, self.concurrency = env, logdir, concurrency
        self.slots: list[subprocess.Popen[bytes] | None] = [None] * (count + 1)
        self.quarantine_slot = count
        self.logs: list[IO[bytes]] = []
        self.lock = threading.Lock()
        self.kills = 0
        self.sigterms = 0
        self.starts = 0
        self.died_alone = 0
        """Workers that died without being killed by the soak (the poison's doing)."""

    def start(self, slot: int) -> None:
        from ponder.cli.localrun import start_quarantine_worker, start_worker

        log = open(self.logdir / f"worker-{slot}-{self.starts}.log", "wb")  # noqa: SIM115
        self.logs.append(log)
        name = f"soak{slot}-{self.starts}"
        self.slots[slot] = (
            start_quarantine_worker(self.env, log, name=name)
            if slot == self.quarantine_slot
            else start_worker(self.env, log, name=name, concurrency=self.concurrency)
        )
        self.starts += 1

    def busy_slots(self) -> list[int]:
        """Slots whose worker holds the lease of a running job (owner ``host:pid:thread``)."""
        import sqlalchemy as sa

        from ponder.db import get_engine

        with get_engine().connect() as conn:
            owners = conn.execute(
                sa.text("select lease_owner from jobs where status = 'running'")
            ).scalars()
            pids = {int(owner.split(":")[1]) for owner in owners if owner}
        return [
            slot
            for slot, proc in enumerate(self.slots)
            if slot != self.quarantine_slot
            and proc is not None
            and proc.poll() is None
            and proc.pid in pids
        ]

    def kill(self, slot: int) -> None:
        with self.lock:
            proc = self.slots[slot]
            if proc is not None and proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
                self.kills += 1
                self.slots[slot] = None  # down on purpose: not counted as a poison death

    def terminate(self, slot: int) -> None:
        """SIGTERM: the worker gives its jobs back and exits; the supervisor restarts it."""
        with self.lock:
            proc = self.slots[slot]
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                self.sigterms += 1

    def supervise(self, restart_after: float, stop: threading.Event) -> None:
        """Restart each worker that is down (killed, stopped, or killed by a poison job)."""
        down_since: dict[int, float] = {}
        while not stop.wait(0.5):
            with self.lock:
                for slot, proc in enumerate(self.slots):
                    if proc is not None and proc.poll() is None:
                        continue
                    if proc is not None and proc.returncode == -signal.SIGKILL:
                        self.died_alone += 1
                    if proc is not None:
                        self.slots[slot] = None
                    since = down_since.setdefault(slot, time.monotonic())
                    if time.monotonic() - since >= restart_after:
                        self.start(slot)
                        del down_since[slot]

    def stop(self) -> None:
        from ponder.cli.localrun import stop

        for proc in self.slots:
            if proc is not None:
                stop(proc, timeout_s=60)
        for log in self.logs:
            log.close()


def count_outcomes(
    job_ids: list[str], received: list[Any], poison_ids: frozenset[str] = frozenset()
) -> dict[str, Any]:
    import sqlalchemy as sa

    from ponder.db import get_engine

    with get_engine().connect() as conn:
        rows = conn.execute(
            sa.text(
                "select j.id, j.status, j.attempts, j.crowd_deaths, j.lone_deaths,"
                " j.quarantined_at is not null as quarantined, j.error,"
                " (select count(*) from trace_events e where e.job_id = j.id"
                "   and e.kind = 'selection') as selections,"
                " (select count(*) from notifications n where n.job_id = j.id) as notifications,"
                " (select count(*) from trace_events e where e.job_id = j.id"
                "   and e.kind = 'preempted') as preempted"
                " from jobs j where j.id = any(:ids)"
            ),
            {"ids": job_ids},
        ).all()
    by_id = {r.id: r for r in rows}
    webhook_ids: dict[str, list[str]] = {}
    for request in received:
        job = json.loads(request.body)["data"]["job_id"]
        webhook_ids.setdefault(job, []).append(request.headers.get("webhook-id", ""))
    statuses = Counter(r.status for r in rows)
    lost = [j for j in job_ids if j not in by_id or by_id[j].status not in ENDED]
    duplicated = [
        j
        for j, r in by_id.items()
        if r.selections > 1 or r.notifications > 1 or len(set(webhook_ids.get(j, []))) > 1
    ]
    undelivered = [
        j for j, r in by_id.items() if r.status in ENDED and j not in webhook_ids
    ]  # fmt: skip
    return {
        "submitted": len(job_ids),
        "completed": statuses["succeeded"] + statuses["needs_review"],
        "statuses": dict(statuses),
        "failed": statuses["failed"],
        "lost": len(lost),
        "lost_ids": lost[:20],
        "duplicated": len(duplicated),
        "duplicated_ids": duplicated[:20],
        "failed_innocent": sum(1 for r in rows if r.status == "failed" and r.id not in poison_ids),
        "failed_innocent_errors": [
            r.error for r in rows if r.status == "failed" and r.id not in poison_ids
        ][:5],
        "poison": [
            {
                "status": r.status,
                "attempts": r.attempts,
                "crowd_deaths": r.crowd_deaths,
                "lone_deaths": r.lone_deaths,
                "error": r.error,
            }
            for r in rows
            if r.id in poison_ids
        ],  # fmt: skip
        "retried_after_a_kill": sum(1 for r in rows if r.attempts > 1),
        "preempted_runs": sum(int(r.preempted) for r in rows),
        "jobs_preempted": sum(1 for r in rows if r.preempted),
        "attempts": dict(sorted(Counter(int(r.attempts) for r in rows).items())),
        "crowd_deaths": dict(sorted(Counter(int(r.crowd_deaths) for r in rows).items())),
        "lone_deaths": dict(sorted(Counter(int(r.lone_deaths) for r in rows).items())),
        "quarantined": sum(1 for r in rows if r.quarantined),
        "webhook_deliveries": len(received),
        "redelivered_same_id": sum(len(v) - len(set(v)) for v in webhook_ids.values()),
        "ended_without_webhook": len(undelivered),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=300)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=16, help="jobs in flight per worker")
    parser.add_argument("--submit-rate", type=float, default=4.0, help="jobs per second")
    parser.add_argument("--kill-every", type=float, default=90.0, help="seconds between kills")
    parser.add_argument(
        "--sigterm-every",
        type=float,
        default=0.0,
        help="seconds between SIGTERMs to a busy worker (0: none)",
    )
    parser.add_argument("--poison", type=int, default=0, help="jobs (among --jobs) whose input "
                        "kills the worker process on every run")  # fmt: skip
    parser.add_argument(
        "--max-kills", type=int, default=0, help="stop killing after this many (0: no limit)"
    )
    parser.add_argument("--restart-after", type=float, default=5.0,
                        help="seconds a killed worker stays down")  # fmt: skip
    parser.add_argument("--lease-ttl", type=int, default=15)
    parser.add_argument(
        "--timeout", type=float, default=1800.0, help="seconds to wait; jobs not ended are lost"
    )
    parser.add_argument("--seed", type=int, default=0, help="which busy worker each kill picks")
    parser.add_argument("--engine-url", help="an OpenAI-compatible server (served name "
                        "smollm2) for the workers instead of the in-process engine")  # fmt: skip
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    import httpx

    from ponder.cli.devservers import WebhookReceiver, free_port
    from ponder.cli.localrun import child_env, start_api, stop, wait_ready
    from ponder.db import session_scope
    from ponder.tenants import issue_key

    reset_database()
    with session_scope() as session:
        key = issue_key(session=session, tenant_name="soak").key
    logdir = Path(tempfile.mkdtemp(prefix="ponder-soak-"))
    env = {
        "PONDER_LOG_LEVEL": "WARNING",
        "PONDER_LIMITS__TENANT_RATE_PER_S": "0",
        "PONDER_LIMITS__MAX_TOKENS_PER_SAMPLE": "192",
        "PONDER_WORKER__LEASE_TTL_S": str(args.lease_ttl),
        "PONDER_WORKER__HEARTBEAT_S": str(max(1, args.lease_ttl // 4)),
        "PONDER_WORKER__RECONCILE_EVERY_S": "5",
        "PONDER_WORKER__REQUEUE_AFTER_S": "60",
        "PONDER_NOTIFY__WEBHOOK_RETRY_SCHEDULE_S": "[1, 2, 5, 10, 20]",
    }
    if args.poison:
        env["PONDER_WORKER__TEST_POISON_MARKER"] = POISON_MARKER
    if args.engine_url:
        env.update({"PONDER_ENGINE__KIND": "openai", "PONDER_ENGINE__MODEL": "smollm2",
                    "PONDER_ENGINE__BASE_URL": args.engine_url})  # fmt: skip
    receiver = WebhookReceiver().start()
    port = free_port()
    api_log = open(logdir / "api.log", "wb")  # noqa: SIM115
    beat_log = open(logdir / "beat.log", "wb")  # noqa: SIM115
    api = start_api(env, port, api_log)
    beat = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "worker.app", "beat", "-l", "INFO",
         "-s", str(logdir / "beat-schedule")],
        cwd=ROOT, env=child_env(env), stdout=beat_log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    fleet = Fleet(env, logdir, args.workers, args.concurrency)
    for slot in range(len(fleet.slots)):
        fleet.start(slot)
    base = f"http://127.0.0.1:{port}"
    wait_ready(base)

    stop_killer = threading.Event()
    rng = random.Random(args.seed)

    def chaos(every: float, hit: Any, counted: Any) -> None:
        while not stop_killer.wait(every):
            if args.max_kills and counted() >= args.max_kills:
                return
            # Each hit lands on a worker with jobs in flight, so it interrupts work.
            busy = fleet.busy_slots()
            while not busy and not stop_killer.wait(1.0):
                busy = fleet.busy_slots()
            if not busy:
                return
            hit(rng.choice(busy))

    job_ids: list[str] = []
    poison_at = {(k + 1) * args.jobs // (args.poison + 1) for k in range(args.poison)}
    poison_ids: set[str] = set()
    rejected = 0
    started = time.monotonic()
    threads = [
        threading.Thread(
            target=fleet.supervise, args=(args.restart_after, stop_killer), daemon=True
        ),
        threading.Thread(
            target=chaos, args=(args.kill_every, fleet.kill, lambda: fleet.kills), daemon=True
        ),
    ]
    if args.sigterm_every:
        threads.append(threading.Thread(
            target=chaos, args=(args.sigterm_every, fleet.terminate, lambda: fleet.sigterms),
            daemon=True,
        ))  # fmt: skip
    for thread in threads:
        thread.start()
    try:
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}) as client:
            for i in range(args.jobs):
                scheduled = started + i / args.submit_rate
                time.sleep(max(0.0, scheduled - time.monotonic()))
                text = f"{document(i)} {POISON_MARKER}" if i in poison_at else document(i)
                response = client.post("/v1/jobs", json={
                    "task": "medrec_extraction", "document": text, "strategy": "single",
                    "webhook_url": receiver.url, "seed": i, "cache": "off",
                })  # fmt: skip
                if response.status_code == 201:
                    job_ids.append(response.json()["id"])
                    if i in poison_at:
                        poison_ids.add(job_ids[-1])
                else:
                    rejected += 1
        submitted_s = time.monotonic() - started
        # Kills go on until every job has ended (or the timeout), then the fleet is restarted
        # one last time and given the lease TTL to finish what the last kill interrupted.
        deadline = time.monotonic() + args.timeout
        while time.monotonic() < deadline:
            counts = count_outcomes(job_ids, receiver.received, frozenset(poison_ids))
            if counts["lost"] == 0 and counts["ended_without_webhook"] == 0:
                break
            time.sleep(2)
        stop_killer.set()
        for thread in threads:
            thread.join()
        wall_s = time.monotonic() - started
        time.sleep(3)  # a late duplicate delivery would arrive by now
        counts = count_outcomes(job_ids, receiver.received, frozenset(poison_ids))
    finally:
        stop_killer.set()
        fleet.stop()
        stop(beat)
        stop(api)
        receiver.stop()
        api_log.close()
        beat_log.close()

    report: dict[str, Any] = {
        "command": "bench/soak.py " + " ".join(sys.argv[1:]),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "workers": args.workers,
        "engine": args.engine_url or "in-process",
        "jobs_in_flight_per_worker": args.concurrency,
        "kill_every_s": args.kill_every,
        "kills": fleet.kills,
        "sigterm_every_s": args.sigterm_every,
        "sigterms": fleet.sigterms,
        "poison_jobs": len(poison_ids),
        "workers_killed_by_poison": fleet.died_alone,
        "worker_starts": fleet.starts,
        "rejected_submissions": rejected,
        "submit_s": round(submitted_s, 1),
        "wall_s": round(wall_s, 1),
        "jobs_per_s": round(len(job_ids) / wall_s, 2),
        **counts,
        "logs": str(logdir),
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    ok = (
        counts["lost"] == 0
        and counts["duplicated"] == 0
        and rejected == 0
        and counts["failed_innocent"] == 0
        and all(p["status"] == "failed" for p in counts["poison"])
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
