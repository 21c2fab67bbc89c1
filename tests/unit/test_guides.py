"""The service guide's content check: every refusal names the field path and the problem;
the shipped demo guides pass it and agree with the catalogue."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from engine import guides
from engine.errors import Invalid
from engine.models import ServiceGuide

DATA = Path(guides.__file__).resolve().parent / "data"
CATALOGUE = {m["code"]: m for m in json.loads((DATA / "matters.json").read_text(encoding="utf-8"))["matters"]}
SHIPPED = json.loads((DATA / "guides.json").read_text(encoding="utf-8"))["guides"]


def good() -> dict:
    return copy.deepcopy(SHIPPED["land_pre_review"])


LAND_DAYS = CATALOGUE["land_pre_review"]["promised_working_days"]


def refusal(content, department="land", catalogue_days=LAND_DAYS) -> dict[str, list[str]]:
    with pytest.raises(Invalid) as caught:
        guides.validate(content, department_code=department, catalogue_days=catalogue_days)
    assert caught.value.status == 422
    return caught.value.errors


def test_a_shipped_guide_passes_and_comes_back_equal():
    content = good()
    assert guides.validate(content, department_code="land", catalogue_days=LAND_DAYS) == content


def edit(path: str, value):
    """A good guide with one value at a dotted path replaced (``materials.2.code``)."""
    content = good()
    *parents, last = path.split(".")
    target = content
    for key in parents:
        target = target[int(key)] if isinstance(target, list) else target[key]
    if isinstance(target, list):
        target[int(last)] = value
    else:
        target[last] = value
    return content


def drop(path: str):
    content = good()
    *parents, last = path.split(".")
    target = content
    for key in parents:
        target = target[int(key)] if isinstance(target, list) else target[key]
    del target[last]
    return content


# (case, content, the field path named, a fragment of its problem)
REFUSED = [
    ("blank name", lambda: edit("name", "   "), "name", "blank"),
    ("name too long", lambda: edit("name", "长" * 201), "name", "at most 200"),
    ("markup", lambda: edit("legal_basis", "<script>alert(1)</script>"), "legal_basis", "markup"),
    ("control character", lambda: edit("process", "第一步\x07第二步"), "process", "control"),
    ("not a string", lambda: edit("fees", 0), "fees", "string"),
    ("another department", lambda: edit("department_code", "drc"), "department_code", "land"),
    ("missing contact", lambda: drop("contact"), "contact", "required"),
    ("unknown field", lambda: edit("remark", "x"), "remark", "unknown"),
    ("days zero", lambda: edit("promised_working_days", 0), "promised_working_days", "1..2500"),
    ("days too many", lambda: edit("promised_working_days", 2501), "promised_working_days", "1..2500"),
    ("days boolean", lambda: edit("promised_working_days", True), "promised_working_days", "integer"),
    ("days text", lambda: edit("statutory_working_days", "20"), "statutory_working_days", "integer"),
    ("promised beyond statutory", lambda: edit("statutory_working_days", 5), "promised_working_days", "statutory"),
    ("no regimes", lambda: edit("regimes", []), "regimes", "non-empty"),
    ("unknown regime", lambda: edit("regimes", ["filing", "licence"]), "regimes.1", "one of"),
    ("duplicate regime", lambda: edit("regimes", ["filing", "filing"]), "regimes.1", "duplicate"),
    ("no materials", lambda: edit("materials", []), "materials", "non-empty"),
    ("material not an object", lambda: edit("materials.1", "site_plan"), "materials.1", "object"),
    ("bad material code", lambda: edit("materials.2.code", "Site-Plan"), "materials.2.code", "^[a-z]"),
    ("one-letter code", lambda: edit("materials.0.code", "a"), "materials.0.code", "^[a-z]"),
    ("duplicate material code", lambda: edit("materials.2.code", "application_form"), "materials.2.code", "duplicate"),
    ("material name blank", lambda: edit("materials.1.name", ""), "materials.1.name", "blank"),
    ("required not boolean", lambda: edit("materials.0.required", "yes"), "materials.0.required", "boolean"),
    ("gap without required", lambda: edit("materials.5", {**good()["materials"][5], "gap_tolerable": True}),
     "materials.5.gap_tolerable", "required"),
    ("template a path", lambda: edit("materials.0.template", "../etc/passwd"), "materials.0.template", "file name"),
    ("template no extension", lambda: edit("materials.0.template", "申请表"), "materials.0.template", "file name"),
    ("template javascript", lambda: edit("materials.0.template", "javascript:alert(1)"), "materials.0.template", "file name"),
    ("unknown material field", lambda: edit("materials.0.size", 1), "materials.0.size", "unknown"),
    ("missing material field", lambda: drop("materials.3.gap_tolerable"), "materials.3.gap_tolerable", "required"),
]


@pytest.mark.parametrize("case, make, field, fragment", REFUSED, ids=[r[0] for r in REFUSED])
def test_refusal_names_the_field_path(case, make, field, fragment):
    errors = refusal(make())
    assert field in errors, errors
    assert any(fragment in problem for problem in errors[field]), errors[field]


def test_no_required_material_is_refused_on_the_list():
    content = good()
    for item in content["materials"]:
        item["required"], item["gap_tolerable"] = False, False
    assert "at least one material must be required" in " ".join(refusal(content)["materials"])


def test_every_problem_is_named_at_once():
    content = edit("materials.2.code", "BAD")
    content["fees"] = ""
    content["regimes"] = ["nope"]
    assert {"materials.2.code", "fees", "regimes.0"} <= set(refusal(content))


def test_not_an_object_is_refused():
    assert "_schema" in refusal(["not", "a", "guide"])


@pytest.mark.parametrize("template", ["", "申请表.docx", "https://www.example.gov.cn/templates/a.pdf"])
def test_templates_accepted(template):
    assert guides.template_problem(template) is None
    assert guides.validate(edit("materials.0.template", template), department_code="land", catalogue_days=LAND_DAYS)["materials"][0]["template"] == template


def test_statutory_limit_may_be_null_and_process_may_span_lines():
    content = edit("statutory_working_days", None)
    content["process"] = "1. 申报\n2. 受理\r\n3. 决定"
    assert guides.validate(content, department_code="land", catalogue_days=LAND_DAYS)["statutory_working_days"] is None


def test_the_demo_has_a_complete_guide_for_every_catalogue_matter():
    assert set(SHIPPED) == set(CATALOGUE)
    for code, content in SHIPPED.items():
        matter = CATALOGUE[code]
        guides.validate(content, department_code=matter["department"], catalogue_days=matter["promised_working_days"])
        assert content["name"] == matter["name"]
        assert content["promised_working_days"] == matter["promised_working_days"]
        assert content["statutory_working_days"] == matter["statutory_working_days"]
        assert content["regimes"] == matter["regimes"]
        assert all(content[key].strip() for key in guides.TEXT_FIELDS), code
        assert all(item["description"].strip() for item in content["materials"]), code
    tolerable = {code for code, c in SHIPPED.items() if any(m["gap_tolerable"] for m in c["materials"])}
    assert {"land_pre_review", "eia_approval"} <= tolerable
    assert SHIPPED["enterprise_filing"]["fees"] == "不收费"


def test_material_lookup_by_code():
    guide = ServiceGuide(matter_code="land_pre_review", version=1, content=good())
    assert guides.material(guide, "land_ownership")["gap_tolerable"] is True
    assert guides.material(guide, "no_such_material") is None


def test_a_guide_may_shorten_the_catalogues_promise_and_never_lengthen_it():
    """第十五条: a department promises within the catalogue's limit; with no statutory limit
    stated, the catalogue's is still the bound (a promised clock of 200 days would count a
    matter on time that the catalogue calls late)."""
    shorter = edit("promised_working_days", LAND_DAYS - 3)
    assert guides.validate(shorter, department_code="land", catalogue_days=LAND_DAYS)["promised_working_days"] == LAND_DAYS - 3
    longer = edit("statutory_working_days", None)
    longer["promised_working_days"] = 200
    assert list(refusal(longer)) == ["promised_working_days"]
    assert f"{LAND_DAYS}" in refusal(longer)["promised_working_days"][0]
