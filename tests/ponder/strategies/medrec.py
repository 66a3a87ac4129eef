"""Medication-reconciliation answers for strategy tests: grounded, invented and broken ones."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from tasks.medrec_extraction import TASK as MEDREC

TASK = dataclasses.replace(
    MEDREC, verifiers=tuple(v for v in MEDREC.verifiers if v.name != "completeness")
)
"""The medication task without its completeness check: these tests score partial lists of
DOC's three drugs on purpose, to exercise selection and voting; completeness has its own tests
(tests/tasks/medrec_extraction/test_completeness.py) and end-to-end ones."""

DOC = (
    "Metoprolol 50 mg by mouth twice daily. Lisinopril 10 mg by mouth daily. "
    "Aspirin 81 mg by mouth daily."
)


def med(name: str, dose: str, frequency: str, evidence: str) -> dict[str, Any]:
    return {
        "name": name,
        "dose": dose,
        "unit": "mg",
        "route": "oral",
        "frequency": frequency,
        "status": "active",
        "evidence": evidence,
    }


METOPROLOL = med("Metoprolol", "50", "twice daily", "Metoprolol 50 mg by mouth twice daily")
LISINOPRIL = med("Lisinopril", "10", "daily", "Lisinopril 10 mg by mouth daily")
ASPIRIN = med("Aspirin", "81", "daily", "Aspirin 81 mg by mouth daily")
INVENTED = med("Benjycillin", "50", "daily", "Benjycillin 50 mg daily")
BAD_DOSE = med("Metoprolol", "fifty", "twice daily", "Metoprolol 50 mg by mouth twice daily")


def answer(*meds: dict[str, Any]) -> str:
    return json.dumps({"medications": list(meds)})


GOOD = answer(METOPROLOL)
BROKEN = '{"medications": [{"name": "Meto'
