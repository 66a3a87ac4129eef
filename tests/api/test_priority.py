"""Job priority is honoured in the queue: 0 is consumed first, 9 last."""

from __future__ import annotations

from ponder.queue import REASONING_QUEUE, celery_app

DOC = "Metoprolol 50 mg twice daily."


def test_higher_priority_jobs_are_consumed_first(api, tenant, isolated_broker):
    ids = {}
    for priority in (9, 5, 0):
        body = {"task": "medrec_extraction", "document": DOC, "n": 1, "priority": priority}
        ids[api.post("/v1/jobs", json=body, headers=tenant.headers).json()["id"]] = priority
    consumed = []
    with celery_app().connection_for_read() as conn:
        q = conn.SimpleQueue(REASONING_QUEUE)
        for _ in range(3):
            message = q.get(timeout=5)
            args = message.decode()[0]
            consumed.append(ids[args[0]])
            message.ack()
        q.close()
    assert consumed == [0, 5, 9]
