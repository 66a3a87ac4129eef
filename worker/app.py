"""The Celery app the worker, beat and flower processes are started with:
``celery -A worker.app worker -Q reasoning -P threads -c 8``, and the quarantine worker with
``celery -A worker.app worker -Q quarantine -P threads -c 1``."""

from celery.signals import worker_ready, worker_shutting_down

from ponder.config import get_settings
from ponder.jobs import preemption
from ponder.logs import configure_logging
from ponder.queue import make_celery

configure_logging()
app = make_celery(get_settings())
app.conf.include = ["worker.tasks"]


@worker_ready.connect
def _serve_metrics(**_: object) -> None:
    port = get_settings().worker.metrics_port
    if port:
        from worker.metrics import serve

        serve(port)


@worker_shutting_down.connect
def _give_runs_back(**_: object) -> None:
    """SIGTERM (a preemption notice, a pod eviction): Celery stops consuming and waits for
    the runs in flight; they stop at their next safe point and give their jobs back."""
    preemption.begin(get_settings())
