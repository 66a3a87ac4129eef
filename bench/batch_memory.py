"""Memory of a large batch through a live API: how far Python allocations (tracemalloc) rise
above where they started while ``POST /v1/batches`` takes a JSONL upload and while
``GET …/results`` streams it back.
The client streams both ways, so what is measured is the API's own memory.

    .venv/bin/python bench/batch_memory.py --items 5000 --items 20000

Uses its own database (``ponder_bench_batches``, recreated) and Redis database 11. No worker:
the items are marked failed in the database so the results can be read.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
import tracemalloc
from collections.abc import Iterator

BENCH_DB = "postgresql+psycopg://postgres@127.0.0.1:5432/ponder_bench_batches"
os.environ["PONDER_DATABASE__URL"] = BENCH_DB
os.environ["PONDER_BROKER__URL"] = "redis://127.0.0.1:6379/11"
os.environ.setdefault("PONDER_LOG_LEVEL", "WARNING")

DOCUMENT = "Metoprolol 50 mg by mouth twice daily. " * 25  # about 1 kB a line


def lines(count: int) -> Iterator[bytes]:
    for i in range(count):
        item = {"custom_id": f"item-{i}", "task": "medrec_extraction", "document": DOCUMENT,
                "strategy": "single", "cache": "off"}  # fmt: skip
        yield json.dumps(item).encode() + b"\n"


def measure(base_url: str, key: str, count: int) -> dict[str, float]:
    import httpx
    import sqlalchemy as sa

    from ponder.db import get_engine

    client = httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {key}"},
                          timeout=900)  # fmt: skip
    upload_mb = sum(len(x) for x in lines(count)) / 1e6
    baseline = _reset_peak()
    started = time.monotonic()
    response = client.post("/v1/batches", content=lines(count),
                           headers={"content-type": "application/jsonl"})  # fmt: skip
    response.raise_for_status()
    create_s, create_rise = (
        time.monotonic() - started,
        tracemalloc.get_traced_memory()[1] - baseline,
    )
    batch_id = response.json()["id"]
    with get_engine().begin() as conn:
        conn.execute(sa.text("update jobs set status = 'failed', error = 'bench' "
                             "where batch_id = :b"), {"b": batch_id})  # fmt: skip
        conn.execute(sa.text("update batches set finished_at = now() where id = :b"),
                     {"b": batch_id})  # fmt: skip
    baseline = _reset_peak()
    started, received = time.monotonic(), 0
    with client.stream("GET", f"/v1/batches/{batch_id}/results") as stream:
        for _ in stream.iter_lines():
            received += 1
    results_s, results_rise = (
        time.monotonic() - started,
        tracemalloc.get_traced_memory()[1] - baseline,
    )
    assert received == count
    return {
        "items": count,
        "upload_mb": round(upload_mb, 1),
        "create_s": round(create_s, 1),
        "create_rise_mb": round(create_rise / 1e6, 1),
        "results_s": round(results_s, 1),
        "results_rise_mb": round(results_rise / 1e6, 1),
    }


def _reset_peak() -> int:
    tracemalloc.reset_peak()
    return tracemalloc.get_traced_memory()[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, action="append", help="batch sizes to measure")
    args = parser.parse_args()

    import psycopg
    import uvicorn

    from api.main import app
    from ponder.cli.dbadmin import create_database, migrate
    from ponder.cli.devservers import free_port
    from ponder.db import session_scope
    from ponder.tenants import issue_key

    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as c:
        c.execute("drop database if exists ponder_bench_batches with (force)")
    create_database(BENCH_DB)
    migrate()
    with session_scope() as session:
        key = issue_key(session=session, tenant_name="bench").key
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    tracemalloc.start()
    for count in args.items or [5000, 20000]:
        print(json.dumps(measure(f"http://127.0.0.1:{port}", key, count)))
    server.should_exit = True
    import redis

    redis.Redis.from_url(os.environ["PONDER_BROKER__URL"]).flushdb()


if __name__ == "__main__":
    main()
