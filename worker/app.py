"""The Celery app the worker, beat and flower processes are started with:
``celery -A worker.app worker -Q reasoning -P threads -c 8``."""

from ponder.config import get_settings
from ponder.logs import configure_logging
from ponder.queue import make_celery

configure_logging()
app = make_celery(get_settings())
app.conf.include = ["worker.tasks"]
