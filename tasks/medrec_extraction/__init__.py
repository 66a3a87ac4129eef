"""Medication reconciliation: extract a structured medication list from a clinical note."""

from tasks.medrec_extraction.task import TASK

__all__ = ["TASK"]
