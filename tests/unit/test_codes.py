"""Project codes (第三章 项目代码): assignment, verification, legacy and credit codes."""
from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st
from stdnum.cn import uscc
from stdnum.iso7064 import mod_11_10

from engine import codes

VALID = "2026-510411-47-03-000001"


def problems_of(code, **kw) -> dict[str, str]:
    with pytest.raises(codes.MalformedCode) as info:
        codes.parse_code(code, **kw)
    assert isinstance(info.value, ValueError)
    assert info.value.problems == codes.check_format(code, **kw)
    assert set(info.value.problems) <= set(codes.PROBLEM_KEYS)
    assert all(info.value.problems.values())
    return info.value.problems


# --------------------------------------------------------------------------- platform scheme


def test_regime_types_are_one_table_of_three_distinct_two_digit_codes():
    assert codes.REGIME_TYPES == {"examination": "01", "approval": "02", "filing": "03"}
    assert set(codes.REGIME_NAMES) == set(codes.REGIME_TYPES)


def test_format_code_is_24_characters_in_the_article_11_layout():
    code = codes.format_code(2026, "510411", "47", "filing", 1)
    assert code == VALID
    assert len(code) == codes.CODE_LENGTH == 24
    assert [len(g) for g in code.split("-")] == [4, 6, 2, 2, 6]


@pytest.mark.parametrize("regime, digits", [("examination", "01"), ("approval", "02"), ("filing", "03")])
def test_each_regime_gets_its_type_digits(regime, digits):
    code = codes.format_code(2027, "220102", "48", regime, 42)
    assert code == f"2027-220102-48-{digits}-000042"
    parsed = codes.parse_code(code)
    assert parsed.regime == regime and parsed.type == digits


def test_format_code_accepts_full_width_region_and_industry():
    assert codes.format_code(2026, "５１０４１１", "４７", "filing", 1) == VALID


def test_max_serial_is_999999():
    assert codes.format_code(2026, "510411", "47", "approval", 999_999).endswith("-02-999999")


@pytest.mark.parametrize("serial", [0, -1, 1_000_000, True, "1", 1.0, None])
def test_format_code_rejects_a_serial_outside_1_to_999999(serial):
    with pytest.raises(codes.MalformedCode) as info:
        codes.format_code(2026, "510411", "47", "filing", serial)
    assert set(info.value.problems) == {"serial"}


@pytest.mark.parametrize(
    "args, key",
    [
        ((2014, "510411", "47", "filing", 1), "year"),
        ((2100, "510411", "47", "filing", 1), "year"),
        (("2026", "510411", "47", "filing", 1), "year"),
        ((2026, "990411", "47", "filing", 1), "region"),
        ((2026, "51041", "47", "filing", 1), "region"),
        ((2026, 510411, "47", "filing", 1), "region"),
        ((2026, "510411", "00", "filing", 1), "industry"),
        ((2026, "510411", "98", "filing", 1), "industry"),
        ((2026, "510411", "7", "filing", 1), "industry"),
        ((2026, "510411", "47", "备案", 1), "type"),
        ((2026, "510411", "47", "planning", 1), "type"),
    ],
)
def test_format_code_names_the_bad_argument(args, key):
    with pytest.raises(codes.MalformedCode) as info:
        codes.format_code(*args)
    assert set(info.value.problems) == {key}


def test_format_code_reports_every_bad_argument_at_once():
    with pytest.raises(codes.MalformedCode) as info:
        codes.format_code(1999, "000000", "99", "x", 0)
    assert set(info.value.problems) == {"year", "region", "industry", "type", "serial"}


@given(
    year=st.integers(2015, 2099),
    province=st.sampled_from(sorted(codes.PROVINCES)),
    rest=st.integers(0, 9999),
    industry=st.sampled_from([row["code"] for row in codes.industries()]),
    regime=st.sampled_from(sorted(codes.REGIME_TYPES)),
    serial=st.integers(1, 999_999),
)
def test_round_trip(year, province, rest, industry, regime, serial):
    region = f"{province}{rest:04d}"
    code = codes.format_code(year, region, industry, regime, serial)
    parsed = codes.parse_code(code)
    assert parsed.scheme == "platform"
    assert (parsed.year, parsed.region, parsed.industry, parsed.regime, parsed.serial) == (
        year, region, industry, regime, serial,
    )
    assert parsed.province == province
    assert parsed.code == code
    assert codes.check_format(code) == {}


def test_parsed_code_to_dict_is_plain_data():
    data = codes.parse_code(VALID).to_dict()
    assert data["scheme"] == "platform" and data["regime"] == "filing" and data["serial"] == 1
    assert data["department"] is None and data["check_digit"] is None


def test_full_width_digits_and_hyphens_are_normalised_before_parsing():
    parsed = codes.parse_code("２０２６－５１０４１１－４７－０３－０００００１")
    assert parsed.code == VALID
    assert codes.check_format("  ２０２６－５１０４１１－４７－０３－０００００１\u3000") == {}


def test_surrounding_whitespace_is_ignored():
    assert codes.parse_code(f"  {VALID}\n").code == VALID


# --------------------------------------------------------------------------- malformed codes


@pytest.mark.parametrize("code", ["", "2026", VALID[:-1], "2026-510411-47-03-00001"])
def test_too_short(code):
    assert "length" in problems_of(code)


@pytest.mark.parametrize("code", [VALID + "1", "2026-510411-47-03-0000001", VALID + "-1"])
def test_too_long(code):
    assert "length" in problems_of(code)


def test_short_segment_is_named():
    problems = problems_of("2026-510411-47-03-00001")
    assert set(problems) == {"length", "serial"}


@pytest.mark.parametrize(
    "code",
    [
        "2026/510411/47/03/000001",
        "2026_510411_47_03_000001",
        "2026–510411–47–03–000001",  # en dash
        "2026—510411—47—03—000001",  # em dash
        "2026 510411 47 03 000001",
        "2026-510411-4703-000001",
        "202651041147030000010000",
    ],
)
def test_wrong_separators(code):
    problems = problems_of(code)
    assert "format" in problems


def test_separators_in_the_wrong_places_name_the_segments():
    problems = problems_of("20265-10411-47-03-000001")
    assert set(problems) == {"year", "region"}


@pytest.mark.parametrize(
    "code, key",
    [
        ("2026-510411-47-03-00000A", "serial"),
        ("2026-510411-47-03-OOOOO1", "serial"),
        ("2026-51041X-47-03-000001", "region"),
        ("2026-510411-4A-03-000001", "industry"),
        ("2026-510411-47-0B-000001", "type"),
        ("20X6-510411-47-03-000001", "year"),
        ("2026-510411-47-03-٠٠٠٠٠١", "serial"),  # Arabic-Indic digits are digits, not ASCII digits
    ],
)
def test_non_digits_are_named_by_segment(code, key):
    assert key in problems_of(code)


@pytest.mark.parametrize("region", ["990411", "000000", "160000", "700000", "910000"])
def test_bad_region_prefix(region):
    assert set(problems_of(f"2026-{region}-47-03-000001")) == {"region"}


@pytest.mark.parametrize("region", ["110000", "650100", "710000", "810000", "820000", "220102"])
def test_valid_province_prefixes(region):
    assert codes.check_format(f"2026-{region}-47-03-000001") == {}


@pytest.mark.parametrize("type_digits", ["00", "04", "99"])
def test_bad_type(type_digits):
    assert set(problems_of(f"2026-510411-47-{type_digits}-000001")) == {"type"}


@pytest.mark.parametrize("industry", ["00", "98", "99"])
def test_bad_industry(industry):
    assert set(problems_of(f"2026-510411-{industry}-03-000001")) == {"industry"}


def test_zero_serial():
    assert set(problems_of("2026-510411-47-03-000000")) == {"serial"}


@pytest.mark.parametrize("first", ["1999", "2000", "2010", "2113", "0000", "9999"])
def test_first_group_neither_a_platform_year_nor_a_central_time(first):
    assert "year" in problems_of(f"{first}-510411-47-03-000001")


def test_several_problems_reported_together():
    problems = problems_of("2026-990411-00-07-000000")
    assert set(problems) == {"region", "industry", "type", "serial"}


@pytest.mark.parametrize("value", [None, 20260510411, b"2026-510411-47-03-000001"])
def test_non_text_is_a_format_problem(value):
    assert set(problems_of(value)) == {"format"}


def test_forcing_an_unknown_scheme_is_a_programming_error():
    with pytest.raises(ValueError):
        codes.check_format(VALID, scheme="provincial")


# --------------------------------------------------------------------------- central scheme


CENTRAL = codes.format_central_code(2021, 5, "320506", "04", "01", "12345")


def test_central_code_layout_and_check_digit():
    assert CENTRAL.startswith("2105-320506-04-01-12345")
    assert len(CENTRAL) == 24
    digits = CENTRAL.replace("-", "")
    assert mod_11_10.validate(digits) == digits
    assert codes.central_check_digit(CENTRAL[:-1]) == CENTRAL[-1]


def test_central_code_parses_without_a_regime():
    parsed = codes.parse_code(CENTRAL)
    assert parsed.scheme == "central"
    assert (parsed.year, parsed.month) == (2021, 5)
    assert parsed.region == "320506" and parsed.department == "04" and parsed.type == "01"
    assert parsed.random == "12345" and parsed.check_digit == CENTRAL[-1]
    assert parsed.regime is None and parsed.industry is None and parsed.serial is None


@given(
    year=st.integers(2021, 2099),
    month=st.integers(1, 12),
    province=st.sampled_from(sorted(codes.PROVINCES)),
    department=st.integers(0, 99),
    type_code=st.integers(0, 99),
    random=st.integers(0, 99_999),
)
def test_central_round_trip(year, month, province, department, type_code, random):
    code = codes.format_central_code(
        year, month, f"{province}0100", f"{department:02d}", f"{type_code:02d}", f"{random:05d}"
    )
    parsed = codes.parse_code(code)
    assert parsed.scheme == "central"
    assert (parsed.year, parsed.month, parsed.random) == (year, month, f"{random:05d}")


def test_bad_check_digit_for_central_codes():
    wrong = CENTRAL[:-1] + str((int(CENTRAL[-1]) + 1) % 10)
    assert set(problems_of(wrong)) == {"check"}


def test_every_single_digit_error_in_a_central_code_is_caught():
    positions = [i for i, ch in enumerate(CENTRAL) if ch != "-" and i >= 5]
    for i in positions:
        for d in "0123456789":
            if d == CENTRAL[i]:
                continue
            altered = CENTRAL[:i] + d + CENTRAL[i + 1 :]
            assert codes.check_format(altered), altered


def test_central_time_code_month_must_be_01_to_12():
    assert "year" in problems_of("2113-320506-04-01-123455", scheme="central")
    assert "year" in problems_of("2100-320506-04-01-123455", scheme="central")


def test_central_codes_start_november_2020():
    assert codes.parse_code(codes.format_central_code(2020, 11, "130100", "04", "01", "00000")).month == 11
    with pytest.raises(codes.MalformedCode):
        codes.format_central_code(2020, 10, "130100", "04", "01", "00000")


def test_central_bad_region_and_random_digits():
    assert "region" in problems_of("2105-990506-04-01-123455")
    assert "serial" in problems_of("2105-320506-04-01-1234X5")
    with pytest.raises(codes.MalformedCode) as info:
        codes.format_central_code(2021, 5, "320506", "4", "01", "12345")
    assert set(info.value.problems) == {"department"}
    for random in ("1234", "123456", 12345, "1234X"):
        with pytest.raises(codes.MalformedCode) as info:
            codes.format_central_code(2021, 5, "320506", "04", "01", random)
        assert set(info.value.problems) == {"serial"}


def test_the_first_groups_of_the_two_schemes_never_overlap():
    for digits in ("".join(p) for p in itertools.product("0123456789", repeat=4)):
        assert not (codes._is_platform_year(digits) and codes._is_central_time(digits)), digits


def test_forcing_a_scheme():
    assert codes.check_format(VALID, scheme="platform") == {}
    assert "year" in codes.check_format(VALID, scheme="central")
    assert "year" in codes.check_format(CENTRAL, scheme="platform")


def test_central_check_digit_helper_rejects_wrong_input():
    with pytest.raises(ValueError):
        codes.central_check_digit("2105-320506-04-01-1234")


# --------------------------------------------------------------------------- industries


def test_industries_table_is_gbt_4754_2017_divisions():
    rows = codes.industries()
    assert len(rows) == 97
    assert [r["code"] for r in rows] == [f"{i:02d}" for i in range(1, 98)]
    assert len({r["code"] for r in rows}) == 97
    assert all(len(r["code"]) == 2 and r["code"].isdigit() for r in rows)
    assert all(r["name"] and r["section_name"] for r in rows)
    assert [r["section"] for r in rows] == sorted(r["section"] for r in rows)
    assert {r["section"] for r in rows} == set("ABCDEFGHIJKLMNOPQRST")


@pytest.mark.parametrize(
    "code, name, section",
    [
        ("01", "农业", "A"),
        ("06", "煤炭开采和洗选业", "B"),
        ("13", "农副食品加工业", "C"),
        ("43", "金属制品、机械和设备修理业", "C"),
        ("44", "电力、热力生产和供应业", "D"),
        ("47", "房屋建筑业", "E"),
        ("48", "土木工程建筑业", "E"),
        ("58", "多式联运和运输代理业", "G"),
        ("65", "软件和信息技术服务业", "I"),
        ("70", "房地产业", "K"),
        ("79", "土地管理业", "N"),
        ("83", "教育", "P"),
        ("97", "国际组织", "T"),
    ],
)
def test_known_divisions(code, name, section):
    assert codes.industry_name(code) == name
    assert {r["code"]: r["section"] for r in codes.industries()}[code] == section


@pytest.mark.parametrize("code", ["00", "98", "7", "470", "", None, 47, "A"])
def test_unknown_industry(code):
    assert codes.industry_name(code) is None


def test_industry_name_accepts_full_width():
    assert codes.industry_name("４７") == "房屋建筑业"


def test_industries_returns_copies():
    codes.industries()[0]["name"] = "changed"
    assert codes.industry_name("01") == "农业"


# --------------------------------------------------------------------------- legacy codes


@pytest.mark.parametrize(
    "raw, normalised",
    [
        ("  jl-2016-0012 ", "JL-2016-0012"),
        ("ＪＬ－２０１６－００１２", "JL-2016-0012"),
        ("吉发改审批〔2016〕12号", "吉发改审批〔2016〕12号"),
        ("a" * 64, "A" * 64),
        (VALID, VALID),
    ],
)
def test_normalize_legacy_code(raw, normalised):
    assert codes.normalize_legacy_code(raw) == normalised


@pytest.mark.parametrize(
    "raw",
    ["", "   ", "\u3000", "a" * 65, "JL\x002016", "JL\t2016", "JL\n2016", "JL\u200b2016", "JL\u20282016", None, 12,
     "川发改投资〔2019〕12号/补", "川发改投资〔2019〕12号／补"],
)
def test_normalize_legacy_code_rejects(raw):
    with pytest.raises(ValueError) as info:
        codes.normalize_legacy_code(raw)
    assert "原编码" in str(info.value) and "legacy code" in str(info.value)


# --------------------------------------------------------------------------- credit codes


def with_check(body: str) -> str:
    return body + uscc.calc_check_digit(body)


VALID_USCC = [
    with_check("91510400MA62X3Y0A"),
    with_check("91510400059555555"),
    with_check("12510400451234567"),
    with_check("93220100MA0Y12345"),
    with_check("N2510400MA6ABCDE1"),  # GB 32100 allows letters in the first two characters
    "91110000600037341L",
]


@pytest.mark.parametrize("code", VALID_USCC)
def test_valid_credit_codes(code):
    assert codes.validate_credit_code(code) == code


def test_credit_code_is_compacted():
    code = VALID_USCC[0]
    spaced = f" {code[:8]} {code[8:]} ".lower()
    assert codes.validate_credit_code(spaced) == code
    assert codes.validate_credit_code(f"{code[:2]}-{code[2:8]}-{code[8:]}") == code
    full_width = "".join(chr(ord(c) + 0xFEE0) for c in code)
    assert codes.validate_credit_code(full_width) == code


def test_wrong_check_character():
    code = VALID_USCC[0]
    alphabet = "0123456789ABCDEFGHJKLMNPQRTUWXY"
    wrong = code[:-1] + next(c for c in alphabet if c != code[-1])
    with pytest.raises(ValueError, match="校验码"):
        codes.validate_credit_code(wrong)


@pytest.mark.parametrize("code", [VALID_USCC[0][:-1], VALID_USCC[0] + "1", "", "   "])
def test_wrong_length(code):
    with pytest.raises(ValueError):
        codes.validate_credit_code(code)


@pytest.mark.parametrize(
    "code",
    [
        f"<b>{VALID_USCC[0]}</b>",
        f"<script>{VALID_USCC[0][:10]}",
        "9151040OMA62X3Y0AT",  # letter O in the region digits
        "91510400MA62X3Y0IT",  # I is not in the GB 32100 alphabet
        "9151040$MA62X3Y0AT",
    ],
)
def test_markup_and_bad_characters(code):
    with pytest.raises(ValueError) as info:
        codes.validate_credit_code(code)
    assert "统一社会信用代码" in str(info.value) and "unified social credit code" in str(info.value)


def test_credit_code_must_be_text():
    with pytest.raises(ValueError):
        codes.validate_credit_code(None)
