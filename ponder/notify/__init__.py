"""Notifications when a job ends: signed webhooks and email."""
