"""Another region's platform: its regions, departments and catalogue of matters imported
from one file (`tzxm import-organisation`), checked whole before anything is written."""
from __future__ import annotations

import copy
import json
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from api.cli import main
from engine import accounts, health, notices, organisation_file, procedures, runtime
from engine.access import Actor
from engine.db import make_engine, make_session_factory, unit_of_work
from engine.errors import Forbidden, Invalid
from engine.health import upgrade
from engine.models import AuditEvent, Department, Matter, ProcedureVersion, Project, Region, Task, User
from engine.projects import PlatformScope
from tests.conftest import START
from tests.integration.helpers import declaration, declare, waits_for_a_lock

NANGUAN = Path(__file__).resolve().parents[1] / "fixtures" / "organisation" / "nanguan.json"
OPERATOR = Actor.system("test-import")


def nanguan() -> dict:
    return json.loads(NANGUAN.read_text(encoding="utf-8"))


def _imported(database_url: str, document: dict):
    """An engine and session factory on the test's database, with ``document`` imported."""
    engine = make_engine(database_url)
    factory = make_session_factory(engine)
    with unit_of_work(factory) as s:
        organisation_file.import_organisation(s, document, actor=OPERATOR, now=START)
    return engine, factory


def test_a_district_elsewhere_runs_its_own_platform_from_an_imported_file(tmp_path, monkeypatch):
    """长春市南关区 on a fresh database: no 仁和区 seed, the shipped procedures, its own accounts;
    a declaration there gets a 220102 project code and reaches its own general window."""
    url = f"sqlite:///{tmp_path / 'nanguan.sqlite3'}"
    monkeypatch.setenv("DATABASE_URL", url)
    runner = CliRunner()
    assert runner.invoke(main, ["db", "upgrade"]).exit_code == 0
    before = make_engine(url)
    assert health.probe(make_session_factory(before), START, region="220102").platform_region_known is False
    before.dispose()
    checked = runner.invoke(main, ["import-organisation", str(NANGUAN), "--dry-run"])
    assert checked.exit_code == 0, checked.output
    assert "regions: 3 would be created (220000, 220100, 220102)" in checked.output, checked.output
    engine = make_engine(url)
    factory = make_session_factory(engine)
    with factory() as s:
        assert s.scalar(select(func.count()).select_from(Region)) == 0  # a dry run writes nothing
    imported = runner.invoke(main, ["import-organisation", str(NANGUAN)])
    assert imported.exit_code == 0, imported.output
    assert imported.output.splitlines() == [
        "regions: 3 were created (220000, 220100, 220102), 0 were updated, 0 unchanged",
        "departments: 8 were created (window, drc, land, env, housing, water, supervision, operator), 0 were updated, 0 unchanged",
        "matters: 7 were created (enterprise_filing, enterprise_approval, feasibility_study, land_pre_review, eia_approval, "
        "soil_water_plan, construction_permit), 0 were updated, 0 unchanged",
    ]
    again = runner.invoke(main, ["import-organisation", str(NANGUAN)])
    assert again.exit_code == 0 and "departments: 0 were created, 0 were updated, 8 unchanged" in again.output, again.output
    refused = runner.invoke(main, ["deploy", "bpmn"])  # the platform still says 510411 (the default)
    assert refused.exit_code == 2 and "TZXM_PLATFORM_REGION" in refused.output, refused.output
    monkeypatch.setenv("TZXM_PLATFORM_REGION", "220102")
    assert runner.invoke(main, ["deploy", "bpmn"]).exit_code == 0
    unit = runner.invoke(main, ["create-unit", "--name", "长春南关示范建设有限公司", "--credit-code", "91510411MA62111112"])
    assert unit.exit_code == 0, unit.output
    unit_id = int(unit.output.split()[-1])
    for args in (["--username", "nanguan_window", "--display-name", "南关区综合窗口", "--role", "window_officer",
                  "--department", "window"],
                 ["--username", "nanguan_unit", "--display-name", "申报人", "--role", "applicant",
                  "--project-unit", str(unit_id)]):
        created = runner.invoke(main, ["create-user", *args], env={"TZXM_PASSWORD": "Zhengwu-2026!"})
        assert created.exit_code == 0, created.output

    assert health.probe(factory, START, region="220102").platform_region_known is True
    assert health.probe(factory, START, region="510411").platform_region_known is False  # the default, not imported here
    with unit_of_work(factory) as s:
        applicant = Actor.of(s.scalar(select(User).where(User.username == "nanguan_unit")))
        project = runtime.declare(s, actor=applicant, scope=PlatformScope("220102"), now=START,
                                  fields=declaration(region_code="220102", location="长春市南关区"))
        code = project.project_code
    with factory() as s:
        assert code.startswith("2026-220102-")
        window_task = s.scalar(select(Task).where(Task.project_code == code, Task.status == "ready"))
        assert (window_task.element_id, window_task.department_code) == ("window_review", "window")
        assert s.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "organisation.import")) == 1
        assert s.get(Department, "window").region.name == "南关区"
        owners = dict(s.execute(select(ProcedureVersion.process_id, ProcedureVersion.department_code)).all())
        assert owners["project_master"] == owners["matters_notice"] == "drc"  # 南关区发展和改革局
        assert owners["matter_eia_approval"] == "env"
    engine.dispose()


def test_a_renamed_department_is_updated_and_a_change_of_structure_refused_writing_nothing(database_url):
    """机构改革: a department's new name is taken (and said in the trail); a department moved to
    another kind, or a matter to other promised days, is refused, and so is the whole file."""
    engine = make_engine(database_url)
    factory = make_session_factory(engine)
    document = {
        "departments": [{"code": "land", "name": "仁和区自然资源和规划局", "region": "510411", "kind": "approving"},
                        {"code": "env", "name": "攀枝花市仁和生态环境局", "region": "510411", "kind": "coordinating"}],
        "matters": [{"code": "forest_land_use", "name": "使用林地审核同意书", "department": "land",
                     "promised_working_days": 15, "regimes": ["examination", "approval", "filing"]},
                    {"code": "eia_approval", "name": "建设项目环境影响评价审批", "department": "env",
                     "promised_working_days": 20, "regimes": ["examination", "approval", "filing"]}],
    }
    with pytest.raises(Invalid) as refused, unit_of_work(factory) as s:
        organisation_file.import_organisation(s, document, actor=OPERATOR, now=START)
    assert set(refused.value.errors) == {"departments.1.kind", "matters.1.promised_working_days"}, refused.value.errors
    assert "'approving'" in refused.value.errors["departments.1.kind"][0]
    with factory() as s:
        assert s.get(Department, "land").name == "仁和区自然资源局" and s.get(Matter, "forest_land_use") is None

    document["departments"][1]["kind"] = "approving"
    document["matters"][1]["promised_working_days"] = 30
    with unit_of_work(factory) as s:
        report = organisation_file.import_organisation(s, document, actor=OPERATOR, now=START)
    assert report.updated["departments"] == ["land"] and report.created["matters"] == ["forest_land_use"]
    assert report.unchanged == {"regions": 0, "departments": 1, "matters": 1}
    with factory() as s:
        assert s.get(Department, "land").name == "仁和区自然资源和规划局"
        assert s.get(Matter, "forest_land_use").legal_basis == ""
        event = s.scalar(select(AuditEvent).where(AuditEvent.action == "organisation.import"))
        assert event.actor == "test-import" and event.summary["updated"]["departments"] == ["land"]
    engine.dispose()


def test_every_problem_of_a_file_is_named_by_its_place(database_url):
    document = nanguan()
    document["extra"] = 1
    document["regions"][0] = {"code": "220199", "name": "南关区", "parent": "220100", "level": "district", "area": 1}
    document["regions"].append({"code": "990000", "name": "<b>无</b>", "parent": None, "level": "province"})
    document["regions"].append({"code": "220200", "name": "吉林市", "parent": "510000", "level": "city"})
    document["regions"].append({"code": "220100", "name": "长春市", "parent": "220000", "level": "city"})
    document["departments"][0]["region"] = "220102"  # no longer in the file
    document["departments"][1]["kind"] = "bureau"
    document["departments"][2]["code"] = "land:officer"
    del document["departments"][3]["name"]
    document["matters"][0]["department"] = "finance"
    document["matters"][1]["regimes"] = ["approval", "approval"]
    document["matters"][2]["promised_working_days"] = 0
    document["matters"][3]["promised_working_days"] = True
    engine = make_engine(database_url)
    with pytest.raises(Invalid) as shape, unit_of_work(make_session_factory(engine)) as s:
        organisation_file.import_organisation(s, document, actor=OPERATOR, now=START)
    assert set(shape.value.errors) == {
        "extra", "regions.0.area", "regions.3.code", "regions.3.name", "regions.5.code", "departments.1.kind",
        "departments.2.code", "departments.3.name", "matters.1.regimes.1", "matters.2.promised_working_days",
        "matters.3.promised_working_days",
    }, shape.value.errors
    assert "regions.1" in shape.value.errors["regions.5.code"][0]  # a duplicate says where the first one is
    fixed = nanguan()
    fixed["regions"][0] = {"code": "220199", "name": "南关区", "parent": "220100", "level": "district"}
    fixed["regions"].append({"code": "220200", "name": "吉林市", "parent": "510400", "level": "city"})  # 攀枝花市
    fixed["regions"].append({"code": "220301", "name": "铁西区", "parent": "220000", "level": "district"})
    fixed["regions"].append({"code": "220203", "name": "龙潭区", "parent": "220100", "level": "district"})
    fixed["matters"][0]["department"] = "finance"
    with pytest.raises(Invalid) as references, unit_of_work(make_session_factory(engine)) as s:
        organisation_file.import_organisation(s, fixed, actor=OPERATOR, now=START)
    assert set(references.value.errors) == {
        "regions.3.parent", "regions.4.parent", "regions.5.code", *(f"departments.{i}.region" for i in range(8)),
        "matters.0.department",
    }, references.value.errors
    with make_session_factory(engine)() as s:
        assert s.get(Region, "220000") is None and s.get(Department, "finance") is None
    engine.dispose()


@pytest.mark.parametrize("data, says", [
    (b"\xd5\xe2\xca\xc7", "UTF-8"),
    (b'{"regions": [', "not valid JSON"),
])
def test_a_file_that_is_not_json_in_utf8_is_refused_on_the_file(data, says):
    with pytest.raises(Invalid) as refused:
        organisation_file.parse(data)
    assert list(refused.value.errors) == ["file"] and says in refused.value.errors["file"][0]


@pytest.mark.parametrize("document", [[], {}, {"description": "只有说明"}, {"regions": {}}])
def test_a_file_with_nothing_to_import_is_refused(database_url, document):
    engine = make_engine(database_url)
    with pytest.raises(Invalid) as refused, unit_of_work(make_session_factory(engine)) as s:
        organisation_file.import_organisation(s, document, actor=OPERATOR, now=START)
    assert set(refused.value.errors) & {"file", "regions"}, refused.value.errors
    engine.dispose()


def test_only_the_operator_imports_and_the_console_lists_each_problem_on_its_line(database_url, monkeypatch, tmp_path):
    engine = make_engine(database_url)
    factory = make_session_factory(engine)
    with factory() as s:
        officer = Actor.of(s.scalar(select(User).where(User.username == "drc_admin")))
    with pytest.raises(Forbidden), unit_of_work(factory) as s:
        organisation_file.import_organisation(s, nanguan(), actor=officer, now=START)
    engine.dispose()
    monkeypatch.setenv("DATABASE_URL", database_url)
    broken = copy.deepcopy(nanguan())
    broken["departments"][0]["kind"] = "bureau"
    broken["matters"][0]["promised_working_days"] = -1
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(broken, ensure_ascii=False), encoding="utf-8")
    result = CliRunner().invoke(main, ["import-organisation", str(path)])
    assert result.exit_code == 2, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith("refused: 组织机构文件有误") and "Traceback" not in result.output
    assert [line.split(":")[0].strip() for line in lines[1:]] == ["departments.0.kind", "matters.0.promised_working_days"]
    with make_session_factory(make_engine(database_url))() as s:
        assert s.get(Region, "220000") is None and s.scalar(select(func.count()).select_from(Project)) == 0


def test_the_operator_imports_over_http_and_a_refusal_names_each_place(client, token, platform):
    """On 仁和区's platform the same department codes are 仁和区's: moving them is refused,
    in a dry run as in an import, and nothing is written; a new department is taken."""
    for query in ("?dry_run=true", ""):
        refused = client.post(f"/api/v1/admin/organisation{query}", json=nanguan(), headers=token("operator"))
        assert refused.status_code == 422
        assert set(refused.get_json()["errors"]) == {f"departments.{i}.region" for i in range(8)}, refused.get_json()
        assert "'510411'" in refused.get_json()["errors"]["departments.0.region"][0]
    nanguan_window = {"regions": nanguan()["regions"], "departments": [
        {"code": "nanguan_window", "name": "南关区政务服务中心综合窗口", "region": "220102", "kind": "general_window"}]}
    dry = client.post("/api/v1/admin/organisation?dry_run=true", json=nanguan_window, headers=token("operator"))
    assert dry.status_code == 200 and dry.get_json()["dry_run"] is True, dry.get_json()
    assert dry.get_json()["created"] == {"regions": ["220000", "220100", "220102"], "departments": ["nanguan_window"],
                                         "matters": []}
    with platform.session_factory() as s:
        assert s.get(Region, "220000") is None  # a dry run and a refusal write nothing
    done = client.post("/api/v1/admin/organisation", json=nanguan_window, headers=token("operator"))
    assert done.status_code == 200 and done.get_json()["created"] == dry.get_json()["created"], done.get_json()
    with platform.session_factory() as s:
        assert s.get(Department, "nanguan_window").region.parent_code == "220100"
    assert client.post("/api/v1/admin/organisation", json=nanguan_window, headers=token("drc_admin")).status_code == 403
    shape = client.post("/api/v1/admin/organisation", json={"regions": [1], "extra": []}, headers=token("operator"))
    assert shape.status_code == 422 and set(shape.get_json()["errors"]) == {"regions.0", "extra"}, shape.get_json()
    assert "/api/v1/admin/organisation" in client.get("/api/v1/openapi.json").get_json()["paths"]
    assert client.get("/api/v1/health").get_json()["platform_region_known"] is True  # 510411, the app's region


def test_a_project_notice_is_issued_by_the_nearest_general_window_above_its_district(database_url):
    """On 攀枝花市's platform a project of 米易县, which has no window of its own, is told its
    conclusion by the city's general window; a 仁和区 project still by 仁和区's."""
    engine = make_engine(database_url)
    factory = make_session_factory(engine)
    city = {"regions": [{"code": "510421", "name": "米易县", "parent": "510400", "level": "district"}],
            "departments": [{"code": "city_window", "name": "攀枝花市政务服务中心综合窗口", "region": "510400",
                             "kind": "general_window"}]}
    with unit_of_work(factory) as s:
        organisation_file.import_organisation(s, city, actor=OPERATOR, now=START)
    issued_by = {}
    with unit_of_work(factory) as s:
        applicant = Actor.of(s.scalar(select(User).where(User.username == "applicant")))
        for region in ("510421", "510411"):
            project = runtime.declare(s, actor=applicant, scope=PlatformScope("510400"), now=START,
                                      fields=declaration(region_code=region))
            notice = notices.issue(s, project=project, matter_code=None, kind="conclusion", particulars={}, now=START)
            issued_by[region] = notice.content["department_name"]
    assert issued_by == {"510421": "攀枝花市政务服务中心综合窗口", "510411": "仁和区政务服务中心综合窗口"}
    engine.dispose()


NEW_DEPARTMENT = {"code": "newdept", "name": "新部门", "region": "510411", "kind": "approving"}
DEEP: object = "深"
for _ in range(40):
    DEEP = [DEEP]


@pytest.mark.parametrize("document, place", [
    ({"regions": [{"code": "510499\n", "name": "新区", "parent": "510400", "level": "district"}]}, "regions.0.code"),
    ({"departments": [{**NEW_DEPARTMENT, "code": "a" * 32 + "\n"}]}, "departments.0.code"),
    ({"matters": [{"code": "newmatter\n", "name": "新事项", "department": "drc", "promised_working_days": 5,
                   "regimes": ["filing"]}]}, "matters.0.code"),
    ({"departments": [{**NEW_DEPARTMENT, "region": "\ud800"}]}, "departments.0.region"),
    ({"departments": [{**NEW_DEPARTMENT, "region": "5104\x0011"}]}, "departments.0.region"),
    ({"departments": [{**NEW_DEPARTMENT, "name": "新部门\ud800"}]}, "departments.0.name"),
    ({"departments": [{**NEW_DEPARTMENT, "name": "新\n部门"}]}, "departments.0.name"),
    ({"departments": [{**NEW_DEPARTMENT, "name": "新部门\t"}]}, "departments.0.name"),
    ({"departments": [NEW_DEPARTMENT], "description": DEEP}, "description.0.0"),
])
def test_text_no_field_may_hold_is_refused_in_a_file_as_in_a_request(database_url, document, place):
    """What the API refuses in any request (control characters, lone surrogates, deep
    nesting) a file given to the console is refused for too; a code is the whole value (a
    trailing line feed is not a code), a name one line."""
    engine = make_engine(database_url)
    factory = make_session_factory(engine)
    with pytest.raises(Invalid) as refused, unit_of_work(factory) as s:
        organisation_file.import_organisation(s, document, actor=OPERATOR, now=START)
    assert any(path.startswith(place) for path in refused.value.errors), refused.value.errors
    with factory() as s:
        assert s.scalar(select(func.count()).select_from(Department).where(Department.code.like("newdept%"))) == 0
        assert s.scalar(select(func.count()).select_from(Region).where(Region.code.like("510499%"))) == 0
    engine.dispose()


def test_a_file_nested_too_deep_to_read_is_refused_on_the_file():
    with pytest.raises(Invalid) as refused:
        organisation_file.parse(b"[" * 200_000 + b"]" * 200_000)
    assert list(refused.value.errors) == ["file"]


def test_regimes_in_another_order_are_the_same_and_a_legal_basis_is_updated(database_url):
    engine = make_engine(database_url)
    factory = make_session_factory(engine)
    with factory() as s:
        stored = s.get(Matter, "land_pre_review")
        entry = {"code": stored.matter_code, "name": stored.name, "department": stored.department_code,
                 "promised_working_days": stored.promised_working_days, "legal_basis": "《土地管理法》第五十二条",
                 "regimes": list(reversed(stored.regimes))}
    new = {"code": "forest_land_use", "name": "使用林地审核同意书", "department": "land", "promised_working_days": 15,
           "regimes": ["filing", "examination"]}
    with unit_of_work(factory) as s:
        report = organisation_file.import_organisation(s, {"matters": [entry, new]}, actor=OPERATOR, now=START)
    assert report.updated["matters"] == ["land_pre_review"] and report.created["matters"] == ["forest_land_use"]
    with factory() as s:
        assert s.get(Matter, "land_pre_review").legal_basis == "《土地管理法》第五十二条"
        assert s.get(Matter, "forest_land_use").regimes == ["examination", "filing"]  # the catalogue's order
    engine.dispose()


def test_an_import_racing_another_for_the_same_code_says_so_on_one_line(database_url, monkeypatch, tmp_path):
    """Checked before writing, a new code may be written meanwhile by another process:
    the import then changes nothing and says to run it again (no traceback)."""
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite serializes writers from BEGIN: an import cannot race another")
    engine = make_engine(database_url)
    other = engine.connect()
    racing = other.begin()
    other.execute(Region.__table__.insert().values(code="220000", name="吉林省", parent_code=None, level="province"))
    monkeypatch.setenv("DATABASE_URL", database_url)
    path = tmp_path / "jilin.json"
    path.write_text(json.dumps({"regions": [nanguan()["regions"][2]]}, ensure_ascii=False), encoding="utf-8")
    outcome = {}
    worker = threading.Thread(target=lambda: outcome.update(result=CliRunner().invoke(main, ["import-organisation", str(path)])))
    worker.start()
    with make_session_factory(engine)() as watcher:
        assert waits_for_a_lock(watcher, "INSERT INTO regions%")
    racing.commit()
    worker.join(60)
    result = outcome["result"]
    assert result.exit_code == 1 and "run the command again" in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output
    with make_session_factory(engine)() as s:
        assert s.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "organisation.import")) == 0
    other.close()
    engine.dispose()


def test_the_master_and_the_matters_table_belong_to_the_coordinating_department_of_the_platforms_region(database_url):
    """The master process and the matters notice table serve every declaration of the
    platform: the 综合管理部门 of its region (or the nearest above) deploys them, not the
    coordinating department whose code happens to sort first."""
    engine, factory = _imported(database_url, {
        "regions": [{"code": "510421", "name": "米易县", "parent": "510400", "level": "district"}],
        "departments": [{"code": "a_city_drc", "name": "攀枝花市发展和改革委员会", "region": "510400", "kind": "coordinating"}]})
    with unit_of_work(factory) as s:
        accounts.create_user(s, now=START, actor="test", username="city_admin", password="Zhengwu-2026!",
                             display_name="市发改委系统管理员", roles=["dept_admin"], department_code="a_city_drc")
    table = (procedures.BPMN_DIR / "matters.dmn").read_bytes()
    with factory() as s:
        admins = {u.username: Actor.of(u) for u in s.scalars(select(User).where(User.username.in_(["city_admin", "drc_admin"])))}
        assert {region: procedures.owner_department(s, procedures.MATTERS_DECISION, region)
                for region in ("510411", "510400", "510421")} == {"510411": "drc", "510400": "a_city_drc",
                                                                  "510421": "a_city_drc"}
    for region, allowed, refused in (("510411", "drc_admin", "city_admin"), ("510400", "city_admin", "drc_admin")):
        with unit_of_work(factory) as s:
            deployed = procedures.deploy(s, actor=admins[allowed], now=START, filename="matters.dmn", content=table,
                                         region=region)
            assert deployed.procedure.process_id == procedures.MATTERS_DECISION
        with pytest.raises(Forbidden), unit_of_work(factory) as s:
            procedures.deploy(s, actor=admins[refused], now=START, filename="matters.dmn", content=table, region=region)
    engine.dispose()


def test_a_regions_own_department_is_dispatched_to_and_offered_on_the_form(client, token, platform):
    """A department the forms' files never named (林业, imported) is among the window's
    choices as served with the task, and is dispatched to; a code that is no department,
    or a department that handles no matter (e-supervision), is refused naming the field."""
    with unit_of_work(platform.session_factory) as s:
        organisation_file.import_organisation(s, {"departments": [
            {"code": "forestry", "name": "仁和区林业局", "region": "510411", "kind": "approving"}]}, actor=OPERATOR, now=START)
    code = declare(client, token)["project_code"]
    [task] = [t for t in client.get("/api/v1/tasks", headers=token("window"), query_string={"project_code": code})
              .get_json()["items"] if t["name"] == "window_review"]
    options = task["form"]["properties"]["departments"]["items"]["enum"]
    names = task["ui_form"]["departments"]["items"]["ui:enumNames"]
    assert dict(zip(options, names))["forestry"] == "仁和区林业局" and "supervision" not in options
    for wrong in ("police", "supervision"):
        r = client.post(f"/api/v1/tasks/{task['id']}/complete", headers=token("window"),
                        json={"data": {"window_decision": "dispatch", "departments": ["drc", wrong]}, "version": task["version"]})
        assert r.status_code == 422 and list(r.get_json()["errors"]) == ["data.departments.1"], r.get_json()
        assert "not a department that handles matters" in r.get_json()["errors"]["data.departments.1"][0]
    r = client.post(f"/api/v1/tasks/{task['id']}/complete", headers=token("window"),
                    json={"data": {"window_decision": "dispatch", "departments": ["drc", "forestry"]}, "version": task["version"]})
    assert r.status_code == 200, r.get_json()
    with platform.session_factory() as s:
        replies = set(s.scalars(select(Task.department_code).where(Task.project_code == code, Task.element_id == "department_reply")))
    assert replies == {"drc", "forestry"}
    with platform.session_factory() as s:  # the handling form's consultation: one department, the same way
        schema, ui = runtime.served_form(s, Task(form="handling.schema.json", ui_form="handling.uischema.json"))
        assert "forestry" in schema["properties"]["consulted_department"]["enum"]
        assert "仁和区林业局" in ui["consulted_department"]["ui:enumNames"]
        runtime.validate_form(s, "handling.schema.json", {"handling_action": "consult", "handling_opinion": "请林业局答复",
                                                          "consulted_department": "forestry", "consultation_question": "是否占用林地"})


def test_the_platforms_own_title_is_printed_on_its_notices_and_feeds(client, token, platform, monkeypatch):
    """TZXM_PLATFORM_NAME: a notice keeps the title it was issued under (read again from its
    content, as the names it prints); one issued before keeps the default."""
    monkeypatch.setenv("TZXM_PLATFORM_NAME", "吉林省投资项目在线审批监管平台")
    with unit_of_work(platform.session_factory) as s:
        applicant = Actor.of(s.scalar(select(User).where(User.username == "applicant")))
        project = runtime.declare(s, actor=applicant, scope=PlatformScope("510411"), now=START, fields=declaration())
        notice = notices.issue(s, project=project, matter_code=None, kind="conclusion", particulars={}, now=START)
        assert notice.content["platform_name"] == "吉林省投资项目在线审批监管平台"
        assert notices._document(notice, notice.content).platform_name == "吉林省投资项目在线审批监管平台"
        earlier = {k: v for k, v in notice.content.items() if k != "platform_name"}
        assert notices._document(notice, earlier).platform_name == "投资项目在线审批监管平台"
    feed = client.get("/api/v1/portal/disclosure/approvals.atom").get_data(as_text=True)
    assert "<name>吉林省投资项目在线审批监管平台</name>" in feed


def test_a_department_that_owns_a_matter_is_offered_whatever_its_kind_and_a_form_is_served_once(database_url):
    """A 行政审批局 is the window and approves (a general window owning a catalogue matter):
    it is dispatched to like any approving department. The served form carries options, not
    the format a strict client would refuse, and is made once however many tasks show it."""
    engine, factory = _imported(database_url, {
        "departments": [{"code": "spj", "name": "仁和区行政审批局", "region": "510411", "kind": "general_window"}],
        "matters": [{"code": "temporary_land_use", "name": "临时用地审批", "department": "spj",
                     "promised_working_days": 10, "regimes": ["examination", "approval", "filing"]}]})
    with factory() as s:
        runtime.validate_form(s, "window_review.schema.json", {"window_decision": "dispatch", "departments": ["spj"]})
        first = [runtime.served_form(s, Task(form="window_review.schema.json", ui_form="window_review.uischema.json"))
                 for _ in range(3)]
        assert first[0] is first[1] is first[2]
        items = first[0][0]["properties"]["departments"]["items"]
        assert "format" not in items and "spj" in items["enum"] and "window" not in items["enum"]
        assert "format" in runtime.form_schema("window_review.schema.json")["properties"]["departments"]["items"]
    engine.dispose()


def test_with_no_department_to_offer_a_form_is_served_without_options(tmp_path):
    """Before any organisation is imported there is nothing to choose: no empty list of
    options (which a client renders as a choice it can never make), and an answer is refused."""
    url = f"sqlite:///{tmp_path / 'empty.sqlite3'}"
    upgrade(url)
    engine = make_engine(url)
    with make_session_factory(engine)() as s:
        schema, ui = runtime.served_form(s, Task(form="window_review.schema.json", ui_form="window_review.uischema.json"))
        items = schema["properties"]["departments"]["items"]
        assert "enum" not in items and "format" not in items and items["type"] == "string"
        assert "ui:enumNames" not in ui["departments"].get("items", {})
        with pytest.raises(Invalid) as refused:
            runtime.validate_form(s, "window_review.schema.json", {"window_decision": "dispatch", "departments": ["drc"]})
        assert list(refused.value.errors) == ["data.departments.0"]
    engine.dispose()


def test_an_exported_organisation_is_imported_back_unchanged_and_into_a_new_database(database_url, tmp_path, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", database_url)
    exported = CliRunner().invoke(main, ["export-organisation"])
    assert exported.exit_code == 0, exported.output
    document = json.loads(exported.output)
    assert [r["code"] for r in document["regions"]] == ["510000", "510400", "510411"]
    assert {"code": "land", "name": "仁和区自然资源局", "region": "510411", "kind": "approving"} in document["departments"]
    assert len(document["matters"]) == 7
    engine = make_engine(database_url)
    with unit_of_work(make_session_factory(engine)) as s:
        report = organisation_file.import_organisation(s, document, actor=OPERATOR, now=START)
    assert not report.changed and report.unchanged == {"regions": 3, "departments": 8, "matters": 7}
    engine.dispose()
    fresh = f"sqlite:///{tmp_path / 'moved.sqlite3'}"
    upgrade(fresh)
    engine = make_engine(fresh)
    with unit_of_work(make_session_factory(engine)) as s:
        moved = organisation_file.import_organisation(s, document, actor=OPERATOR, now=START)
    assert moved.created["departments"] == [d["code"] for d in document["departments"]]
    with make_session_factory(engine)() as s:
        assert organisation_file.export(s) == document
    engine.dispose()


def test_a_citys_platform_whose_own_departments_handle_its_districts_projects(tmp_path, clock):
    """One platform, one set of departments (README, "Left from session 14"): on 攀枝花市's
    platform, its departments at the city, a project of 米易县 (a district below) is seen and
    worked by the city's window and departments."""
    url = f"sqlite:///{tmp_path / 'city.sqlite3'}"
    upgrade(url)
    city = nanguan()
    city["regions"] = [{"code": "510000", "name": "四川省", "parent": None, "level": "province"},
                       {"code": "510400", "name": "攀枝花市", "parent": "510000", "level": "city"},
                       {"code": "510421", "name": "米易县", "parent": "510400", "level": "district"}]
    for department in city["departments"]:
        department["region"] = "510400"
        department["name"] = department["name"].replace("南关区", "攀枝花市")
    engine = make_engine(url)
    factory = make_session_factory(engine)
    with unit_of_work(factory) as s:
        organisation_file.import_organisation(s, city, actor=OPERATOR, now=START)
        procedures.deploy_directory(s, actor=OPERATOR, now=START, region="510400")
        unit = accounts.create_project_unit(s, now=START, actor="test", name="米易示范建设有限公司", credit_code="91510411MA62111112")
        for username, role, department in (("city_window", "window_officer", "window"), ("city_drc", "officer", "drc"),
                                           ("miyi_unit", "applicant", None)):
            accounts.create_user(s, now=START, actor="test", username=username, password="Zhengwu-2026!", display_name=username,
                                 roles=[role], department_code=department, project_unit_id=unit.id if department is None else None)
    engine.dispose()
    from api import create_app

    app = create_app({"TESTING": True, "DATABASE_URL": url, "SECRET_KEY": "c" * 40, "TZXM_CLOCK_OBJECT": clock,
                      "TZXM_PLATFORM_REGION": "510400", "TZXM_SWEEP_SECONDS": 1})
    client, platform = app.test_client(), app.extensions["tzxm"]

    def bearer(username: str) -> dict[str, str]:
        with platform.session_factory() as s:
            user = s.scalar(select(User).where(User.username == username))
            return {"Authorization": f"Bearer {accounts.issue_token(user, now=clock.now(), secret=platform.secret_key).access_token}"}

    declared = client.post("/api/v1/projects", headers=bearer("miyi_unit"), json=declaration(region_code="510421", location="米易县"))
    assert declared.status_code == 201, declared.get_json()
    code = declared.get_json()["project_code"]
    assert code.startswith("2026-510421-")
    assert client.get(f"/api/v1/projects/{code}", headers=bearer("city_window")).status_code == 200
    [review] = client.get("/api/v1/tasks", headers=bearer("city_window"), query_string={"project_code": code}).get_json()["items"]
    departments = review["context"]["departments"]
    done = client.post(f"/api/v1/tasks/{review['id']}/complete", headers=bearer("city_window"),
                       json={"data": {"window_decision": "dispatch", "departments": departments}, "version": review["version"]})
    assert done.status_code == 200, done.get_json()
    replies = client.get("/api/v1/tasks", headers=bearer("city_drc"), query_string={"project_code": code}).get_json()["items"]
    assert [t["name"] for t in replies] == ["department_reply"]
    assert client.get(f"/api/v1/projects/{code}", headers=bearer("city_drc")).status_code == 200
    app.extensions["tzxm_engine"].dispose()
