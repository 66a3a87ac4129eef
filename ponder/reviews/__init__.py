"""The review workspace's core: reviewer accounts, the queue, the soft lock, decisions on
``needs_review`` (and QA-sampled ``succeeded``) jobs, review statistics and the gold export.
Used by the JSON API (api/routes/reviews.py), the pages under ``/review`` and the CLI."""
