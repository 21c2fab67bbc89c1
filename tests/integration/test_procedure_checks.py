"""Deploy checks against the platform: the matters notice table run over sample
declarations, a procedure id keeping its kind, putting back an older version, lanes
naming real departments and working roles, UTF-8 only, matter ids from the catalogue."""
from __future__ import annotations

import hashlib
import time
import re
from io import BytesIO

import pytest
from sqlalchemy import func, select

from engine import codes, matters_table
from engine.access import Actor
from engine.models import AuditEvent, ProcedureVersion, ProcessInstance
from engine.procedures import deploy_directory
from tests.conftest import START
from tests.integration.helpers import declaration, declare, snapshot, supply_all_materials
from tests.shipped import CJK, edit, shipped

FILING = "matter_enterprise_filing.bpmn"
LAND = "matter_land_pre_review.bpmn"
DMN = "matters.dmn"



def upload(client, headers, filename, content, path="/api/v1/procedures"):
    if isinstance(content, str):
        content = content.encode("utf-8")
    return client.post(path, headers=headers, data={"file": (BytesIO(content), filename)}, content_type="multipart/form-data")


def validate(client, token, filename, content):
    return upload(client, token("analyst"), filename, content, "/api/v1/procedures/validate")


def refused(r, key: str, fragment: str = "") -> list[str]:
    """The response is a 422 naming ``key``; its messages are "中文 (English)"."""
    body = r.get_json()
    assert r.status_code == 422, (r.status_code, body)
    assert key in body["errors"], body["errors"]
    messages = body["errors"][key]
    assert all(CJK.search(m) and "(" in m for m in messages), messages
    assert any(fragment in m for m in messages), messages
    return messages


def procedure_rows(platform) -> int:
    with platform.session_factory() as s:
        return s.scalar(select(func.count()).select_from(ProcedureVersion))


def refused_everywhere(client, token, platform, filename, content, key, fragment="", deployer="drc_admin"):
    """Validate and deploy agree: both 422 naming ``key`` with the same messages; nothing is
    stored. Returns the messages."""
    before, count = snapshot(platform), procedure_rows(platform)
    validated = refused(validate(client, token, filename, content), key, fragment)
    deployed = refused(upload(client, token(deployer), filename, content), key, fragment)
    assert snapshot(platform) == before and procedure_rows(platform) == count
    assert deployed == validated
    return deployed


def declare_raw(client, token, **facts):
    return client.post("/api/v1/projects", json=declaration(**facts), headers=token("applicant"))


def notice(client, token, **facts) -> list[str]:
    r = declare_raw(client, token, **{"building_works": False, **facts})
    assert r.status_code == 201, r.get_json()
    return [m["matter_code"] for m in r.get_json()["matters"]]


def store_directly(platform, process_id: str, kind: str, xml: str) -> None:
    """A version stored before today's checks existed (old data): the runtime must cope."""
    with platform.session_factory() as s:
        version = s.scalar(select(func.max(ProcedureVersion.version)).where(ProcedureVersion.process_id == process_id)) or 0
        s.add(ProcedureVersion(process_id=process_id, kind=kind, version=version + 1, department_code="drc",
                               filename=f"{process_id}.{kind}", sha256=hashlib.sha256(xml.encode()).hexdigest(), xml=xml,
                               spec_json=None, deployed_at=START, deployed_by="old-platform"))
        s.commit()


# --- D1: the matters notice table -----------------------------------------------------------------

LAND_AND_BUILDING = {"regime": "filing", "industry_code": "13", "building_works": True, "new_land_use": True}


def test_shipped_table_passes_and_a_changed_threshold_deploys(client, token):
    assert validate(client, token, DMN, shipped(DMN)).status_code == 200
    r = upload(client, token("drc_admin"), DMN, edit(shipped(DMN), "<text>&gt;= 30</text>", "<text>&gt; 50</text>"))
    assert r.status_code == 201, r.get_json()
    assert notice(client, token, **LAND_AND_BUILDING) == ["enterprise_filing", "land_pre_review", "construction_permit"]


def test_input_naming_a_variable_the_declaration_does_not_give_is_refused(client, token, platform):
    content = edit(shipped(DMN), "<text>new_land_use</text>", "<text>new_land_usage</text>")
    refused_everywhere(client, token, platform, DMN, content, "input_new_land_use", "new_land_usage")
    assert notice(client, token, **LAND_AND_BUILDING) == ["enterprise_filing", "land_pre_review", "construction_permit"]


def test_a_table_stored_before_the_checks_that_fails_answers_409_not_500(client, token, platform):
    store_directly(platform, "matters_notice", "dmn", edit(shipped(DMN), "<text>new_land_use</text>", "<text>new_land_usage</text>"))
    r = declare_raw(client, token, **LAND_AND_BUILDING)
    assert r.status_code == 409, r.get_json()
    assert "应办事项决策表" in r.get_json()["message"] and "does not evaluate" in r.get_json()["message"]
    with platform.session_factory() as s:
        assert s.scalar(select(func.count()).select_from(ProcessInstance)) == 0  # nothing of the declaration kept


def test_renamed_output_column_is_refused(client, token, platform):
    content = edit(shipped(DMN), 'name="matter_code"', 'name="matter"')
    messages = refused_everywhere(client, token, platform, DMN, content, "output_matter_code", "matter")
    assert any(m.endswith(": matter") for m in messages), messages  # the column as it was named
    lacking = refused(upload(client, token("drc_admin"), DMN, content), "matters_notice", "matter_code")
    assert lacking == ["决策表缺少输出列 (the table lacks the output columns): matter_code"]


def test_unique_table_whose_rules_overlap_is_refused_naming_a_sample(client, token, platform):
    content = edit(shipped(DMN), 'hitPolicy="COLLECT"', 'hitPolicy="UNIQUE"')
    messages = refused(validate(client, token, DMN, content), "matters_notice_table", "UNIQUE")
    assert "regime=" in messages[0] and "new_land_use=" in messages[0]
    refused(upload(client, token("drc_admin"), DMN, content), "matters_notice_table")


def regime_rules_only(text: str) -> str:
    """The table with only its three regime rules: exclusive, so UNIQUE is right."""
    for rule in ("land", "eia_sensitive", "eia_industry", "soil_water", "construction"):
        text, n = re.subn(rf'      <rule id="rule_{rule}">.*?</rule>\n', "", text, flags=re.S)
        assert n == 1, rule
    return text


def test_unique_table_whose_rules_are_exclusive_deploys(client, token):
    content = edit(regime_rules_only(shipped(DMN)), 'hitPolicy="COLLECT"', 'hitPolicy="UNIQUE"')
    r = upload(client, token("drc_admin"), DMN, content)
    assert r.status_code == 201, r.get_json()
    assert notice(client, token, **LAND_AND_BUILDING) == ["enterprise_filing"]


@pytest.mark.parametrize("old,new,key,fragment", [
    ('<text>"enterprise_filing"</text>', '<text>"drc"</text>', "rule_filing_matter_code", "drc"),
    ('<text>"land_pre_review"</text>', '<text>"land_pre_check"</text>', "rule_land_matter_code", "land_pre_check"),
    ('<outputEntry id="rule_filing_department">\n          <text>"drc"</text>',
     '<outputEntry id="rule_filing_department">\n          <text>"land"</text>', "rule_filing_department", "drc"),
], ids=["department-in-matter-column", "matter-outside-catalogue", "wrong-department"])
def test_each_output_value_is_checked_against_its_own_column(client, token, platform, old, new, key, fragment):
    messages = refused_everywhere(client, token, platform, DMN, edit(shipped(DMN), old, new), key, fragment)
    assert len(messages) == 1, messages  # the cell, not the table, is named


def test_rule_without_a_department_is_refused(client, token, platform):
    content = edit(shipped(DMN), """        <outputEntry id="rule_filing_department">
          <text>"drc"</text>
        </outputEntry>
""", "")
    messages = refused_everywhere(client, token, platform, DMN, content, "rule_filing", "department")
    assert messages == ["每条规则须给出 matter_code 和 department (every rule gives a matter and its department)"]


def test_computed_output_is_checked_by_running_the_samples(client, token, platform):
    content = edit(shipped(DMN), '<text>"land_pre_review"</text>', '<text>"land_" + regime</text>')
    messages = refused(validate(client, token, DMN, content), "matters_notice", "land_")
    assert "new_land_use=True" in messages[0]  # the sample declaration that met it
    # the same computation where it always gives a catalogue matter (the rule matches only its regime)
    ok = edit(shipped(DMN), '<text>"enterprise_approval"</text>', '<text>"enterprise_" + regime</text>')
    assert validate(client, token, DMN, ok).status_code == 200


def test_cell_that_fails_on_a_declaration_is_refused_naming_the_rule_and_sample(client, token, platform):
    content = edit(shipped(DMN), '<text>"filing"</text>', "<text>&gt; 5</text>")  # regime > 5: str against int
    messages = refused(validate(client, token, DMN, content), "rule_filing", "regime=")
    assert any("does not evaluate" in m for m in messages)


# --- D2: an id keeps its kind ----------------------------------------------------------------------

@pytest.mark.parametrize("filename,content,key", [
    ("matters_notice.bpmn", lambda: shipped(FILING).replace('"matter_enterprise_filing"', '"matters_notice"'), "matters_notice"),
    ("project_master.dmn", lambda: shipped(DMN).replace('"matters_notice"', '"project_master"'), "project_master"),
    ("matter_enterprise_filing.dmn", lambda: shipped(DMN).replace('"matters_notice"', '"matter_enterprise_filing"'),
     "matter_enterprise_filing"),
], ids=["bpmn-as-matters_notice", "dmn-as-project_master", "dmn-as-matter"])
def test_an_id_of_the_other_kind_is_refused(client, token, platform, filename, content, key):
    refused_everywhere(client, token, platform, filename, content(), key)
    assert notice(client, token, regime="filing", industry_code="13") == ["enterprise_filing"]


def test_a_dmn_stored_under_the_master_id_is_never_started(client, token, platform):
    store_directly(platform, "project_master", "dmn", shipped(DMN).replace('"matters_notice"', '"project_master"'))
    assert notice(client, token, regime="filing", industry_code="13") == ["enterprise_filing"]
    with platform.session_factory() as s:
        master = s.scalars(select(ProcessInstance).where(ProcessInstance.kind == "master")).one()
        assert (master.procedure_version.kind, master.procedure_version.version) == ("bpmn", 1)


# --- D3: putting back an older version ----------------------------------------------------------------

def to_filing_stage(client, token) -> None:
    """Declare a filing project and take it through the window and 发改's reply: the
    enterprise filing matter starts."""
    code = declare(client, token, regime="filing", industry_code="13", building_works=False)["project_code"]
    supply_all_materials(client, token, code)
    for user, name, data in (("window", "window_review", lambda t: {"window_decision": "dispatch", "departments": t["context"]["departments"]}),
                             ("drc", "department_reply", lambda t: {"reply_outcome": "accepted", "reply_comment": "本部门有应办事项，已受理"})):
        items = client.get("/api/v1/tasks", headers=token(user), query_string={"project_code": code, "page_size": 50}).get_json()["items"]
        task = next(t for t in items if t["name"] == name)
        r = client.post(f"/api/v1/tasks/{task['id']}/complete", headers=token(user), json={"data": data(task), "version": task["version"]})
        assert r.status_code == 200, r.get_json()


def filing_versions(platform) -> list[int]:
    with platform.session_factory() as s:
        return sorted(r.procedure_version.version for r in s.scalars(
            select(ProcessInstance).where(ProcessInstance.matter_code == "enterprise_filing")))


def test_older_content_becomes_the_newest_version_and_new_matters_take_it(client, token, platform):
    v2 = edit(shipped(FILING), 'name="备案审查"', 'name="备案审查（第二版）"')
    assert upload(client, token("drc_admin"), FILING, v2).status_code == 201
    r = upload(client, token("drc_admin"), FILING, shipped(FILING))
    assert r.status_code == 201, r.get_json()
    body = r.get_json()
    assert body["created"] is True and body["version"] == 3
    xml = client.get("/api/v1/procedures/matter_enterprise_filing/versions/3/xml", headers=token("analyst")).data
    assert xml.startswith(shipped(FILING).encode()) and "version 3 reinstates the content of version 1" in xml.decode()
    assert body["sha256"] == hashlib.sha256(xml).hexdigest()
    with platform.session_factory() as s:
        event = s.scalars(select(AuditEvent).where(AuditEvent.action == "procedure.deploy").order_by(AuditEvent.seq.desc())).first()
        assert event.summary["version"] == 3 and event.summary["same_content_as"] == 1
    again = upload(client, token("drc_admin"), FILING, shipped(FILING))  # the same as the newest now: a no-op
    assert again.status_code == 200 and again.get_json()["created"] is False and again.get_json()["version"] == 3
    assert upload(client, token("drc_admin"), FILING, v2).get_json()["version"] == 4  # and v2's content again: v4
    assert upload(client, token("drc_admin"), FILING, shipped(FILING)).get_json()["version"] == 5
    to_filing_stage(client, token)
    assert filing_versions(platform) == [5]



def test_the_shipped_files_deployed_at_a_start_never_undo_a_departments_newer_version(client, token, platform):
    """`make run` deploys bpmn/ at every start: a shipped file that an older version has
    must not come back as the newest over what a department deployed since."""
    v2 = edit(shipped(FILING), 'name="备案审查"', 'name="备案审查（第二版）"')
    assert upload(client, token("drc_admin"), FILING, v2).status_code == 201
    with platform.session_factory() as s:
        results = deploy_directory(s, actor=Actor.system("start"), now=START, region="510411")
        s.commit()
    assert not any(d.created for d in results)
    with platform.session_factory() as s:
        newest = s.scalars(select(ProcedureVersion).where(ProcedureVersion.process_id == "matter_enterprise_filing")
                           .order_by(ProcedureVersion.version.desc())).first()
        assert newest.version == 2 and "第二版" in newest.xml

# --- D4/D5: lanes -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("lane,fragment", [("fgw:officer", "no department"), ("drc:leader", "a lane's role"),
                                           ("drc:analyst", "a lane's role"), ("drc:supervisor", "a lane's role")])
def test_lane_naming_no_department_or_a_role_that_works_no_task_is_refused(client, token, platform, lane, fragment):
    content = edit(shipped(FILING), 'name="drc:officer"', f'name="{lane}"')
    messages = refused_everywhere(client, token, platform, FILING, content, "filing_check", lane)
    assert any(fragment in m for m in messages), messages


def test_a_department_admins_lane_deploys(client, token):
    r = upload(client, token("drc_admin"), FILING, edit(shipped(FILING), 'name="drc:officer"', 'name="drc:dept_admin"'))
    assert r.status_code == 201, r.get_json()


def test_a_department_gives_its_matters_tasks_only_to_itself(client, token, platform):
    content = edit(shipped(FILING), 'name="drc:officer"', 'name="land:officer"')
    refused_everywhere(client, token, platform, FILING, content, "filing_check", "land:officer")
    r = upload(client, token("operator"), FILING, content)  # the operator is not limited
    assert r.status_code == 201, r.get_json()


def test_the_master_names_any_department(client, token):
    master = edit(shipped("project_master.bpmn"), 'name="综合窗口确认/批分"', 'name="综合窗口确认、批分"')
    r = upload(client, token("drc_admin"), "project_master.bpmn", master)
    assert r.status_code == 201, r.get_json()


# --- D7: UTF-8 only ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("encoding", ["GB18030", "UTF-16"])
def test_a_file_saved_in_another_encoding_is_refused_by_validate_and_deploy(client, token, platform, encoding):
    text = shipped(FILING).replace('encoding="UTF-8"', f'encoding="{encoding}"').replace('name="备案审查"', 'name="备案审查（另存）"')
    messages = refused_everywhere(client, token, platform, FILING, text.encode(encoding.lower()), "file", "UTF-8")
    assert messages == ["请以 UTF-8 编码保存 (save the file as UTF-8)"]


def test_utf8_bytes_declaring_another_encoding_are_refused(client, token, platform):
    text = shipped(FILING).replace('encoding="UTF-8"', 'encoding="GB18030"')
    messages = refused_everywhere(client, token, platform, FILING, text.encode("utf-8"), "file", "UTF-8")
    assert messages == ["请以 UTF-8 编码保存 (save the file as UTF-8)"]


def test_a_utf8_byte_order_mark_is_fine(client, token):
    content = b"\xef\xbb\xbf" + edit(shipped(FILING), 'name="备案审查"', 'name="备案审查（BOM）"').encode("utf-8")
    assert validate(client, token, FILING, content).status_code == 200
    r = upload(client, token("drc_admin"), FILING, content)
    assert r.status_code == 201, r.get_json()
    xml = client.get("/api/v1/procedures/matter_enterprise_filing/versions/2/xml", headers=token("analyst")).data
    assert xml == content
    assert upload(client, token("drc_admin"), FILING, content).get_json()["created"] is False


# --- D9: a matter procedure names a catalogue matter ------------------------------------------------------

def test_a_matter_id_outside_the_catalogue_is_refused(client, token, platform):
    content = shipped(LAND).replace('"matter_land_pre_review"', '"matter_land_pre_review_2026"')
    messages = refused_everywhere(client, token, platform, "matter_land_x.bpmn", content, "matter_land_pre_review_2026",
                                  "land_pre_review_2026")
    assert any("nothing would ever run this procedure" in m for m in messages), messages
    by_operator = refused(upload(client, token("operator"), "matter_land_x.bpmn", content), "matter_land_pre_review_2026")
    assert by_operator == messages  # the operator too: no catalogue matter, nothing runs it


# --- the matters notice table: its size, and values that are not text -------------------------------------

def industry_rules(count: int) -> str:
    """``count`` rules in the 核准目录's shape: an industry each, with its own investment threshold."""
    rules = []
    for i in range(count):
        code, threshold = f"{13 + i:02d}", 100 * (i + 1)
        cells = ['"approval"', f'"{code}"', f">= {threshold}", "-", "-", "-", "-"]
        entries = "".join(f'<inputEntry id="ri{i}_{n}"><text>{c.replace(">", "&gt;")}</text></inputEntry>'
                          for n, c in enumerate(cells))
        rules.append(f'<rule id="rule_ind_{i}">{entries}<outputEntry id="ro{i}_m"><text>"eia_approval"</text></outputEntry>'
                     f'<outputEntry id="ro{i}_d"><text>"env"</text></outputEntry></rule>')
    return "".join(rules)


def test_a_table_with_many_industry_thresholds_is_checked_in_seconds(client, token):
    """Each industry's samples take the thresholds of the rules that may apply to it, not
    every threshold of the table (30 industries took 74 s and, on PostgreSQL, met the idle
    limit: 503)."""
    content = edit(shipped(DMN), "</decisionTable>", industry_rules(30) + "</decisionTable>")
    started = time.monotonic()
    r = upload(client, token("drc_admin"), DMN, content)
    assert r.status_code == 201, r.get_json()
    assert time.monotonic() - started < 30


def test_a_table_too_large_to_check_is_refused_naming_why(client, token, monkeypatch):
    monkeypatch.setattr(matters_table, "MAX_RULE_EVALUATIONS", 1000)
    content = edit(shipped(DMN), "</decisionTable>", industry_rules(5) + "</decisionTable>")
    [message] = refused(upload(client, token("drc_admin"), DMN, content), "matters_notice", "too large to check")
    assert "× 13 rules" in message and "merge rules" in message, message  # the shipped table's 8 and the 5 added


def test_a_list_where_a_matter_belongs_is_refused_not_a_500(client, token):
    content = edit(shipped(DMN), '<text>"enterprise_filing"</text>', '<text>["enterprise_filing"]</text>')
    r = validate(client, token, DMN, content)
    assert r.status_code == 422, r.get_json()


def test_a_rule_naming_every_industry_leaves_no_unnamed_sample_and_still_checks(client, token):
    every = ", ".join(f'"{row["code"]}"' for row in codes.industries())
    old = '<inputEntry id="rule_approval_industry_code">\n          <text>-</text>'
    content = edit(shipped(DMN), old, f'<inputEntry id="rule_approval_industry_code">\n          <text>? in ({every})</text>')
    r = validate(client, token, DMN, content)
    assert r.status_code == 200, r.get_json()  # the table checks on the industries it names (was a 500)


# --- a matter's own limit and the law's -------------------------------------------------------------------

def test_a_matters_own_limit_may_be_shorter_than_the_statutory_one_never_longer(client, token, platform):
    """备案: 3 working days (攀仁府办〔2018〕77号 三（五）; the guide's statutory_working_days). A
    filing procedure promising 30 is refused at validate and deploy; one promising 2 deploys."""
    longer = edit(shipped(FILING), "start_clock('filing', working_days=3)", "start_clock('filing', working_days=30)", 2)
    messages = refused(validate(client, token, FILING, longer), "start_filing_clock", "exceeds the matter's statutory 3")
    assert any("法定时限 3 个工作日" in m for m in messages), messages
    refused_everywhere(client, token, platform, FILING, longer, "start_filing_clock", "30")
    shorter = edit(shipped(FILING), "start_clock('filing', working_days=3)", "start_clock('filing', working_days=2)", 2)
    r = upload(client, token("drc_admin"), FILING, shorter)
    assert r.status_code == 201, r.get_json()
