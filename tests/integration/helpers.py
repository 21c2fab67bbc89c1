"""Small helpers the HTTP tests share."""
from __future__ import annotations

from sqlalchemy import func, select

from engine.models import AuditEvent, CodeSerial, Project


def declaration(**overrides):
    """A valid declaration body (API.md field names)."""
    body = {
        "name": "仁和区新能源材料产业园项目",
        "regime": "filing",
        "region_code": "510411",
        "industry_code": "30",
        "location": "攀枝花市仁和区前进镇",
        "investment": "12000.5",
        "construction_content": "新建厂房2万平方米及配套设施",
        "start_year": 2026,
        "end_year": 2028,
        "classified": False,
        "new_land_use": False,
        "environment_sensitive": False,
        "water_soil_impact": False,
        "building_works": True,
    }
    body.update(overrides)
    return body


def snapshot(platform) -> tuple:
    """Counts that a refused request must leave unchanged."""
    with platform.session_factory() as s:
        return (
            s.scalar(select(func.count()).select_from(Project)),
            s.scalar(select(func.count()).select_from(AuditEvent)),
            tuple(s.execute(select(CodeSerial.year, CodeSerial.last_serial).order_by(CodeSerial.year)).all()),
        )


def declare(client, token, user="applicant", **overrides):
    response = client.post("/api/v1/projects", json=declaration(**overrides), headers=token(user))
    assert response.status_code == 201, response.get_json()
    return response.get_json()
