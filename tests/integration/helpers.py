"""Small helpers the HTTP tests share."""
from __future__ import annotations

import threading
from contextlib import contextmanager
from io import BytesIO

from sqlalchemy import event, func, select

from engine.access import Actor
from engine.models import AuditEvent, CodeSerial, Project, User


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


#: The smallest file the platform accepts as a PDF (its type is read from the bytes).
TINY_PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def supply_materials(client, token, code, matter_code, user="applicant"):
    """Upload every required material on the matter's guide (what acceptance needs)."""
    guide = client.get(f"/api/v1/portal/guides/{matter_code}")
    assert guide.status_code == 200, guide.get_json()
    for item in guide.get_json()["materials"]:
        if item["required"]:
            r = client.post(f"/api/v1/projects/{code}/materials", headers=token(user), content_type="multipart/form-data",
                            data={"matter_code": matter_code, "material": item["code"],
                                  "file": (BytesIO(TINY_PDF + item["code"].encode()), f"{item['name']}.pdf")})
            assert r.status_code == 201, r.get_json()
    return guide.get_json()


def supply_all_materials(client, token, code, user="applicant"):
    """Every notified matter's required materials, as a project unit does after the matters notice."""
    r = client.get(f"/api/v1/projects/{code}", headers=token(user))
    assert r.status_code == 200, r.get_json()
    for matter in r.get_json()["matters"]:
        supply_materials(client, token, code, matter["matter_code"], user)


def waits_for_a_lock(watcher, statement_like: str, tries: int = 1000) -> bool:
    """Whether, within about ``tries`` hundredths of a second, some PostgreSQL backend is
    waiting for a lock in a statement LIKE ``statement_like`` (how a test knows the other
    side of a race has reached its lock before it goes on)."""
    from sqlalchemy import text

    for _ in range(tries):
        waiting = watcher.scalar(text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                      "AND query LIKE :statement"), {"statement": statement_like})
        watcher.rollback()
        if waiting:
            return True
        threading.Event().wait(0.01)
    return False


def actor(platform, username: str) -> Actor:
    with platform.session_factory() as s:
        return Actor.of(s.scalars(select(User).where(User.username == username)).one())


@contextmanager
def statements(app):
    """The statements sent while inside, each as (SQL, number of bound parameters)."""
    sent: list[tuple[str, int]] = []

    def capture(conn, cursor, statement, parameters, context, executemany):
        sent.append((statement, len(parameters or ())))

    engine = app.extensions["tzxm_engine"]
    event.listen(engine, "before_cursor_execute", capture)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", capture)
