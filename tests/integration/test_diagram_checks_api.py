"""POST /api/v1/procedures/validate and deploy refuse what the diagram checks catch with
422, naming the element and saying what is wrong in Chinese with an English gloss."""
from __future__ import annotations

import re
from io import BytesIO
from pathlib import Path

import pytest

BPMN = Path(__file__).resolve().parents[2] / "bpmn"
FILING = "matter_enterprise_filing.bpmn"
CJK = re.compile(r"[\u4e00-\u9fff]")


def edited(old: str, new: str) -> bytes:
    text = (BPMN / FILING).read_text(encoding="utf-8")
    assert old in text, old
    return text.replace(old, new, 1).encode("utf-8")


def post(client, headers, path, content):
    return client.post(path, headers=headers, data={"file": (BytesIO(content), FILING)}, content_type="multipart/form-data")


CASES = {
    "unknown-clock-kind": (("start_clock('filing', working_days=3)", "start_clock('filling', working_days=3)"), "start_filing_clock"),
    "negative-days": (("start_clock('filing', working_days=3)", "start_clock('filing', working_days=-1)"), "start_filing_clock"),
    "unknown-notice": (("issue_notice('decision')", "issue_notice('decison')"), "filed"),
    "timer-kind-typo": (("clock_due('filing')", "clock_due('filling')"), "filing_check_red"),
    "groovy": (('scriptFormat="python"', 'scriptFormat="groovy"'), None),
}


@pytest.mark.parametrize("case", list(CASES))
def test_validate_and_deploy_refuse_naming_the_element(client, token, case):
    (old, new), element = CASES[case]
    content = edited(old, new)
    if element is None:  # the first script task of the file
        element = re.search(rb'<bpmn:scriptTask id="(\w+)"[^>]*scriptFormat="groovy"', content).group(1).decode()
    for headers, path in ((token("analyst"), "/api/v1/procedures/validate"), (token("drc_admin"), "/api/v1/procedures")):
        r = post(client, headers, path, content)
        body = r.get_json()
        assert r.status_code == 422, body
        assert element in body["errors"], body["errors"]
        assert all(CJK.search(m) and "(" in m for m in body["errors"][element]), body["errors"]
    listed = client.get("/api/v1/procedures", headers=token("analyst"), query_string={"process_id": "matter_enterprise_filing"})
    assert listed.get_json()["total"] == 1  # nothing deployed


def test_the_shipped_diagram_still_validates(client, token):
    r = post(client, token("analyst"), "/api/v1/procedures/validate", (BPMN / FILING).read_bytes())
    assert r.status_code == 200, r.get_json()


@pytest.mark.parametrize("nesting", ["x = " + "+".join(["1"] * 1000), "x = " + "-" * 30000 + "1"])
def test_code_nested_past_the_parsers_limits_is_a_refusal_not_a_500(client, token, nesting):
    """Python's parser and compiler fail with RecursionError or MemoryError (not a
    SyntaxError) on deep enough code: every reader of a diagram's code says so as a 422."""
    content = edited("start_clock('filing', working_days=3)", nesting + "\nstart_clock('filing', working_days=3)")
    for path in ("/api/v1/procedures/validate", "/api/v1/procedures"):
        r = post(client, token("drc_admin"), path, content)
        assert r.status_code == 422, (path, r.status_code, r.get_json())
        assert any("nested too deeply" in m for m in r.get_json()["errors"]["start_filing_clock"]), r.get_json()
