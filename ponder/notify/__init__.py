"""Notifications when a job or a batch ends: signed webhooks (to a job's URL or a registered
endpoint) and email, through an outbox."""
