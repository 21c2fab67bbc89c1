"""Whose time a clock counts: a matter's procedure's clocks are its matter's department's.

A department deploys its own procedures (and runs its own scripts): its diagram saying
``department = 'land'`` before it starts a clock must not put its lights and overdue
records on the land department's account in alerts and e-supervision (found by a
sandbox review). On SQLite and PostgreSQL."""
from __future__ import annotations

from io import BytesIO
from pathlib import Path

from sqlalchemy import select

from engine.models import Clock
from tests.integration.helpers import declare
from tests.integration.test_workflow_api import FILING_PROJECT, REPLY_ACCEPTED, complete, dispatch, find

FILING = (Path(__file__).resolve().parents[2] / "bpmn" / "matter_enterprise_filing.bpmn").read_text(encoding="utf-8")
FILING_SCRIPT = "consultations = []\nstart_clock('filing', working_days=3)"


def filing_started_after(client, token, script: str) -> str:
    """drc deploys its filing procedure with ``script`` run before the filing clock starts;
    a filing project is declared, dispatched and accepted by drc: its filing matter starts.
    Returns the project code."""
    assert FILING_SCRIPT in FILING
    content = FILING.replace(FILING_SCRIPT, script + "\n" + FILING_SCRIPT, 1).encode()
    r = client.post("/api/v1/procedures", headers=token("drc_admin"), content_type="multipart/form-data",
                    data={"file": (BytesIO(content), "matter_enterprise_filing.bpmn")})
    assert r.status_code == 201, r.get_json()
    code = declare(client, token, **FILING_PROJECT)["project_code"]
    dispatch(client, token, code)
    r = complete(client, token, "drc", find(client, token, "drc", "department_reply", code), REPLY_ACCEPTED)
    assert r.status_code == 200, r.get_json()
    return code


def test_a_matters_clock_counts_against_its_department_whatever_its_data_says(client, token, platform):
    code = filing_started_after(client, token, "department = 'land'")
    with platform.session_factory() as s:
        owners = s.execute(select(Clock.kind, Clock.department_code).where(Clock.project_code == code)).all()
    assert ("filing", "drc") in owners and ("filing", "land") not in owners, owners
    assert ("reply", "drc") in owners  # the master's reply clocks are still each department's own
