"""The transform language: every function, operators, pipelines, and errors that point at the problem."""
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from mapping.transforms import FUNCTIONS, TransformError, TransformSyntaxError, compile_transform


def run(expr, value=None, record=None):
    return compile_transform(expr)(value, record)


@pytest.mark.parametrize(
    ("expr", "value", "expected"),
    [
        ("trim(value)", "  华为 \u3000", "华为"),
        ("upper(value)", "acme", "ACME"),
        ("lower(value)", "ACME", "acme"),
        ("halfwidth(value)", "ＡＢＣ１２３（深圳）", "ABC123(深圳)"),
        ("strip_company_suffix(value)", "深圳市华为技术股份有限公司", "深圳市华为技术"),
        ("strip_company_suffix(value)", "Acme Robotics Co., Ltd.", "Acme Robotics"),
        ("concat(value, '-', 1)", "A", "A-1"),
        ("concat(null, value)", "x", "x"),
        ("join(value, '/')", ["a", "b"], "a/b"),
        ("split(value, ',')", "a, b ,c", ["a", "b", "c"]),
        ("split(value, ',', -1)", "a,b,c", "c"),
        ("split(value, ',', 5)", "a,b", None),
        ("replace(value, '（', '(')", "阿里巴巴（中国", "阿里巴巴(中国"),
        ("regex_replace(value, '\\s+', ' ')", "a  \t b", "a b"),
        ("regex_replace(value, '(\\d{3})(\\d{4})(\\d{4})', '\\1-\\2-\\3')", "13800138000", "138-0013-8000"),
        ("regex_extract(value, '(\\d+)号', 1)", "合同 2024 号", None),
        ("regex_extract(value, '(\\d+)号', 1)", "合同2024号", "2024"),
        ("matches(value, '^9[0-9A-Z]{17}$')", "914403001922038216", True),
        ("left(value, 2)", "深圳市", "深圳"),
        ("right(value, 4)", "13800138000", "8000"),
        ("truncate(value, 3)", "abcdef", "abc"),
        ("pad_left(value, 5)", "7", "00007"),
        ("contains(value, '有限')", "华为有限公司", True),
        ("starts_with(value, '深圳')", "深圳市", True),
        ("ends_with(value, '公司')", "深圳市", False),
        ("length(value)", "华为", 2),
        ("normalize_company(value)", "ACME Robotics Co Ltd", "acmerobotics"),
        ("normalize_company(value, true)", "深圳市华为技术有限公司", "华为技术"),
        ("normalize_phone(value)", "+86 755 8888 1234", "75588881234"),
        ("normalize_domain(value)", "https://www.huawei.com/cn", "huawei.com"),
        ("normalize_tax_id(value)", "9144 0300-192203821 6", "914403001922038216"),
        ("normalize_email(value)", " A@B.CN ", "a@b.cn"),
        ("default(value, '未知')", "", "未知"),
        ("default(value, '未知')", "x", "x"),
        ("coalesce(null, '', value, 'z')", "y", "y"),
        ("if(value > 100, 'big', 'small')", Decimal("150"), "big"),
        ("if(value, 'yes')", None, None),
        ("case(value, '1', 'gold', '2', 'silver', 'other')", "2", "silver"),
        ("case(value, '1', 'gold', '2', 'silver', 'other')", "9", "other"),
        ("case(value, '1', 'gold')", "9", None),
        ("is_empty(value)", [], True),
        ("to_text(value)", Decimal("1.50"), "1.50"),
        ("to_number(value)", "1280000.00", Decimal("1280000.00")),
        ("to_integer(value)", "30", 30),
        ("round(value, 2)", "2.005", Decimal("2.01")),
        ("abs(value)", Decimal("-3"), Decimal("3")),
        ("to_date(value)", datetime(2024, 5, 6, 7, 0, tzinfo=UTC), date(2024, 5, 6)),
        ("to_date(value, '%Y年%m月%d日')", "2024年05月06日", date(2024, 5, 6)),
        ("to_datetime(value, '%Y-%m-%d %H:%M', 'Asia/Shanghai')", "2024-05-06 15:42", datetime(2024, 5, 6, 7, 42, tzinfo=UTC)),
        ("local_date(value, 'Asia/Shanghai')", datetime(2024, 5, 5, 20, 0, tzinfo=UTC), date(2024, 5, 6)),
        ("add_days(value, 30)", date(2024, 1, 15), date(2024, 2, 14)),
        ("add_days(value, -1)", "2024-03-01", date(2024, 2, 29)),
        ("add_months(value, 1)", date(2024, 1, 31), date(2024, 2, 29)),
        ("add_months(value, -12)", date(2024, 2, 29), date(2023, 2, 28)),
        ("add_hours(value, 8)", datetime(2024, 1, 1, 20, tzinfo=UTC), datetime(2024, 1, 2, 4, tzinfo=UTC)),
        ("add_minutes(value, 90)", datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 1, 1, 30, tzinfo=UTC)),
        ("days_between(value, '2024-12-31')", date(2024, 1, 1), 365),
        ("format_date(value, '%Y年%m月%d日')", date(2024, 5, 6), "2024年05月06日"),
        ("first(value)", ["1002", "1003"], "1002"),
        ("last(value)", ["1002", "1003"], "1003"),
    ],
)
def test_functions(expr, value, expected):
    assert run(expr, value) == expected


def test_every_function_is_covered_above():
    from pathlib import Path

    source = Path(__file__).read_text(encoding="utf-8")
    missing = [name for name in FUNCTIONS if f"{name}(" not in source.replace("def test_", "")]
    assert missing == []


def test_null_flows_through_text_functions():
    for name in ("trim", "upper", "lower", "halfwidth", "strip_company_suffix", "to_text"):
        assert run(f"{name}(value)", None) is None
    assert run("add_days(value, 3)", None) is None


def test_operators_and_access():
    record = {"First_Name": "伟", "Last_Name": "王", "lines": [{"qty": 2}], "amount": "100.00"}
    assert run("concat(record.Last_Name, record.First_Name)", None, record) == "王伟"
    assert run("record.lines[0].qty * 3", None, record) == 6
    assert run("record['Last_Name'] + record.First_Name", None, record) == "王伟"
    assert run("record.amount * 1.13", None, record) == Decimal("113.0000")
    assert run("record.missing.deeper", None, record) is None
    assert run("value in ['a', 'b']", "a") is True
    assert run("value not in ['a', 'b']", "a") is False
    assert run("not (value == 'x') and value != 'y' or false", "z") is True
    assert run("-value + 10 / 4", 1) == Decimal("1.5")
    assert run("value >= 0 and value <= 100", 50) is True
    assert run("'1' == 1") is False  # text is not a number
    assert run("null + 1") is None


def test_pipes_and_named_pipelines():
    assert run("value | trim | halfwidth | upper", " ａｂｃ ") == "ABC"
    assert run("value | split(',') | first", "x,y") == "x"
    pipeline = compile_transform(["trim", "upper", {"regex_replace": ["\\s+", "-"]}, {"default": "N/A"}])
    assert pipeline.source == "value | trim | upper | regex_replace('\\\\s+', '-') | default('N/A')"
    assert pipeline("  a b  c ") == "A-B-C" and pipeline("  ") == "N/A"
    assert compile_transform([{"truncate": 3}])("abcdef") == "abc"


def test_record_fields_are_known_for_pulls():
    t = compile_transform("concat(record.Last_Name, record['First_Name'], value)")
    assert t.record_fields == {"Last_Name", "First_Name"}


@pytest.mark.parametrize(
    ("expr", "message", "position"),
    [
        ("uper(value)", "unknown function 'uper'; did you mean 'upper'?", 0),
        ("trim(value", "expected ')' or ',', found the end", 10),
        ("trim(value, 1)", "trim() takes 1 argument, got 2 — usage: trim(text)", 0),
        ("regex_replace(value, '(', '')", "bad regular expression '('", 0),
        ("valeu", "unknown name 'valeu'; did you mean 'value'?", 0),
        ("value +", "unexpected end of expression", 7),
        ("local_date(value, 'Mars/Base')", "unknown time zone 'Mars/Base'", 0),
        ("'abc", "unterminated string", 0),
        ("value ; drop", "unexpected character ';'", 6),
        ("__import__('os')", "unknown function '__import__'", 0),
        ("value.__class__", None, None),
        ("", "empty expression", 0),
    ],
)
def test_syntax_errors_say_what_and_where(expr, message, position):
    if message is None:  # attribute access is a dict lookup, never Python attribute access
        assert run(expr, "text") is None
        return
    with pytest.raises(TransformSyntaxError) as info:
        compile_transform(expr)
    assert message in info.value.message
    assert info.value.position == position


def test_pipeline_errors():
    with pytest.raises(TransformSyntaxError, match="unknown function 'uppr'; did you mean 'upper'"):
        compile_transform(["trim", "uppr"])
    with pytest.raises(TransformSyntaxError, match="step 1"):
        compile_transform([{"a": 1, "b": 2}])
    with pytest.raises(TransformSyntaxError, match="at least one step"):
        compile_transform([])


def test_runtime_errors_are_transform_errors():
    with pytest.raises(TransformError, match="add_days"):
        run("add_days(value, 1)", "not a date")
    with pytest.raises(TransformError, match="cannot compare"):
        run("value > 1", "abc")
    with pytest.raises(TransformError, match="date arithmetic"):
        run("value + 1", date(2024, 1, 1))
    with pytest.raises(TransformError, match="DivisionByZero|cannot compute"):
        run("value / 0", 1)
