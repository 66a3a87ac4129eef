"""The Celery app the worker, beat and flower processes are started with:
``celery -A worker.app worker -Q reasoning -P threads -c 8``."""

from celery.signals import worker_ready

from ponder.config import get_settings
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
