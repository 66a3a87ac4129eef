"""The worker's own Prometheus endpoint (``PONDER_WORKER__METRICS_PORT``; 0 turns it off):
what only this process knows — its engine's requests in flight. Job, token and queue figures
come from PostgreSQL and Redis through the API's ``/metrics``."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from worker import engine as engine_holder


class EngineCollector(Collector):
    def collect(self) -> Iterator[Metric]:
        engine = engine_holder.current()
        in_flight = GaugeMetricFamily(
            "ponder_engine_requests_in_flight", "Requests in this worker's engine"
        )
        peak = GaugeMetricFamily(
            "ponder_engine_requests_peak", "Most requests in this worker's engine at once"
        )
        in_flight.add_metric([], float(getattr(engine, "in_flight", 0)))
        peak.add_metric([], float(getattr(engine, "peak_in_flight", 0)))
        yield in_flight
        yield peak


def serve(port: int) -> None:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(EngineCollector())
    start_http_server(port, registry=registry)
