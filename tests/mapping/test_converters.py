"""Every converter, and property-based round trips: system → canonical → system gives back the payload."""
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mapping.canonical import ENTITIES
from mapping.converters import CONVERTERS, ConversionError, default_converter, make_converter, parse_timezone

SHANGHAI = ZoneInfo("Asia/Shanghai")
ZONES = ["Asia/Shanghai", "UTC", "America/New_York", "Europe/London", "Asia/Kolkata", "Australia/Lord_Howe", "+08:00", "-03:30"]


def conv(name, tz="Asia/Shanghai", **options):
    return make_converter(name, options, parse_timezone(tz))


# -- scalars ---------------------------------------------------------------


def test_text():
    c = conv("text")
    assert c.to_canonical("华为") == "华为"
    assert c.to_canonical("") is None and c.to_canonical(None) is None
    assert c.to_canonical(123) == "123" and c.to_canonical(Decimal("1.50")) == "1.50"
    assert conv("text", strip=True).to_canonical("  a ") == "a"
    assert conv("text", empty_is_null=False).to_canonical("") == ""
    assert c.to_system("x") == "x" and c.to_system(None) is None
    with pytest.raises(ConversionError):
        c.to_canonical({"a": 1})


def test_integer():
    c = conv("integer")
    assert c.to_canonical("30") == 30 and c.to_canonical(30) == 30 and c.to_canonical("30.0") == 30
    assert c.to_system(30) == 30
    assert conv("integer", output="string").to_system(30) == "30"
    with pytest.raises(ConversionError):
        c.to_canonical("30.5")
    with pytest.raises(ConversionError):
        c.to_canonical(True)


def test_decimal_never_goes_through_float():
    c = conv("decimal")
    assert c.to_canonical("1234567890123456.123456789") == Decimal("1234567890123456.123456789")
    assert c.to_canonical(0.1) == Decimal("0.1")  # a JSON float read exactly as written
    assert c.to_canonical("1,234.50") == Decimal("1234.50")
    assert c.to_system(Decimal("1.50")) == Decimal("1.50") and isinstance(c.to_system("2.5"), Decimal)
    assert conv("decimal", places=2).to_system(Decimal("2.005")) == Decimal("2.01")
    assert conv("decimal", output="string").to_system(Decimal("1E+3")) == "1000"
    with pytest.raises(ConversionError):
        c.to_canonical("abc")
    with pytest.raises(ConversionError):
        c.to_canonical("NaN")


def test_fx_number_is_text_on_the_wire():
    c = conv("fx_number")
    assert c.to_canonical("1280000.00") == Decimal("1280000.00")
    assert c.to_system(Decimal("1280000.00")) == "1280000.00"
    assert conv("fx_number", places=2).to_system(Decimal("12.5")) == "12.50"


def test_boolean():
    c = conv("boolean")
    assert [c.to_canonical(v) for v in (True, "true", "1", 1, "是", "Y")] == [True] * 6
    assert [c.to_canonical(v) for v in (False, "false", "0", 0, "否", "N")] == [False] * 6
    yn = conv("boolean", true_value="Y", false_value="N")
    assert yn.to_system(True) == "Y" and yn.to_canonical("N") is False
    with pytest.raises(ConversionError):
        c.to_canonical("maybe")


def test_lists():
    assert conv("list").to_canonical(["ERP", " CRM "]) == ["ERP", "CRM"]
    assert conv("list", separator=",").to_canonical("ERP,CRM") == ["ERP", "CRM"]
    assert conv("list", separator=";").to_system(["a", "b"]) == "a;b"
    assert conv("zoho_multiselect").to_system(["Analytics", "Big data"]) == ["Analytics", "Big data"]
    with pytest.raises(ConversionError):
        conv("list").to_canonical(5)


def test_raw_passes_anything():
    assert conv("raw").to_canonical({"a": [1]}) == {"a": [1]}


# -- dates and times ----------------------------------------------------------


def test_fx_datetime_and_date():
    assert conv("fx_datetime").to_canonical(1710207000000) == datetime(2024, 3, 12, 1, 30, tzinfo=UTC)
    assert conv("fx_datetime").to_canonical("1710207000000") == datetime(2024, 3, 12, 1, 30, tzinfo=UTC)
    assert conv("fx_datetime").to_system(datetime(2024, 3, 12, 9, 30, tzinfo=SHANGHAI)) == 1710207000000
    # the reference's example: 1585929600000 is local midnight of 2020-04-04 in China
    assert conv("fx_date").to_canonical(1585929600000) == date(2020, 4, 4)
    assert conv("fx_date").to_system(date(2020, 4, 4)) == 1585929600000
    assert conv("fx_date", "UTC").to_system(date(2020, 4, 4)) == 1585958400000
    with pytest.raises(ConversionError):
        conv("fx_datetime").to_canonical("2024-03-12")


def test_zoho_datetime_and_date():
    c = conv("zoho_datetime", "Asia/Kolkata")
    assert c.to_canonical("2022-11-21T15:12:13+05:30") == datetime(2022, 11, 21, 9, 42, 13, tzinfo=UTC)
    assert c.to_canonical("2024-02-19T18:30:23-11:00") == datetime(2024, 2, 20, 5, 30, 23, tzinfo=UTC)
    assert c.to_canonical("2024-02-19T18:30:23Z") == datetime(2024, 2, 19, 18, 30, 23, tzinfo=UTC)
    assert c.to_system(datetime(2022, 11, 21, 9, 42, 13, 500000, tzinfo=UTC)) == "2022-11-21T15:12:13+05:30"
    assert conv("zoho_datetime", "+08:00").to_system(datetime(2024, 1, 1, tzinfo=UTC)) == "2024-01-01T08:00:00+08:00"
    assert conv("zoho_date").to_canonical("2018-10-09") == date(2018, 10, 9)
    assert conv("zoho_date").to_system(date(2018, 10, 9)) == "2018-10-09"
    with pytest.raises(ConversionError):
        conv("zoho_date").to_canonical("2018-13-45")


def test_kingdee_local_times():
    c = conv("kingdee_datetime")
    assert c.to_canonical("2024-05-06 15:42:10") == datetime(2024, 5, 6, 7, 42, 10, tzinfo=UTC)
    assert c.to_canonical("2024-05-06T15:42:10.123") == datetime(2024, 5, 6, 7, 42, 10, 123000, tzinfo=UTC)
    assert c.to_system(datetime(2024, 5, 6, 7, 42, 10, tzinfo=UTC)) == "2024-05-06 15:42:10"
    assert conv("kingdee_datetime", "Europe/London").to_system(datetime(2024, 7, 1, 12, tzinfo=UTC)) == "2024-07-01 13:00:00"
    d = conv("kingdee_date")
    assert d.to_canonical("2024-05-06T00:00:00") == d.to_canonical("2024-05-06 00:00:00") == date(2024, 5, 6)
    assert d.to_system(date(2024, 5, 6)) == "2024-05-06"


def test_sql_values():
    dt = conv("sql_datetime")
    assert dt.to_canonical(datetime(2024, 5, 6, 15, 42, 10)) == datetime(2024, 5, 6, 7, 42, 10, tzinfo=UTC)
    assert dt.to_system(datetime(2024, 5, 6, 7, 42, 10, tzinfo=UTC)).tzinfo is not None
    assert conv("sql_datetime", naive=True).to_system(datetime(2024, 5, 6, 7, 42, 10, tzinfo=UTC)) == datetime(2024, 5, 6, 15, 42, 10)
    assert conv("sql_date").to_canonical("2024-05-06") == date(2024, 5, 6)
    assert conv("sql_date").to_system(date(2024, 5, 6)) == date(2024, 5, 6)
    assert conv("sql_decimal").to_system(Decimal("1.10")) == Decimal("1.10")


def test_datetime_and_date_generic():
    c = conv("datetime", "Asia/Shanghai")
    assert c.to_canonical("2024-05-06T15:42:10") == datetime(2024, 5, 6, 7, 42, 10, tzinfo=UTC)  # naive = local
    assert c.to_system(datetime(2024, 5, 6, 7, 42, 10, tzinfo=UTC)) == "2024-05-06T15:42:10+08:00"
    assert conv("datetime", format="%Y%m%d%H%M").to_system(datetime(2024, 5, 6, 7, 42, tzinfo=UTC)) == "202405061542"
    assert conv("date", format="%Y年%m月%d日").to_system(date(2024, 5, 6)) == "2024年05月06日"
    assert conv("date").to_canonical(datetime(2024, 5, 5, 20, tzinfo=UTC)) == date(2024, 5, 6)  # its date in Shanghai


# -- owners and references ----------------------------------------------------------


def test_owner_and_lookup_shapes():
    fx = conv("fx_employee")
    assert fx.to_canonical(["1002"]) == "1002" and fx.to_canonical([]) is None and fx.to_canonical("1002") == "1002"
    assert fx.to_system("1002") == ["1002"]
    owner = conv("zoho_owner")
    assert owner.to_canonical({"name": "王芳", "id": "5725767000000411013", "email": "w@x.cn"}) == "5725767000000411013"
    assert owner.to_system("5725767000000411013") == {"id": "5725767000000411013"}
    assert conv("zoho_owner", key="email").to_canonical({"id": "1", "email": "w@x.cn"}) == "w@x.cn"
    with pytest.raises(ConversionError, match="by id"):
        conv("zoho_owner", key="email").to_system("w@x.cn")
    lookup = conv("zoho_lookup")
    assert lookup.to_canonical({"name": "Acme", "id": "42"}) == "42" and lookup.to_system("42") == {"id": "42"}
    with pytest.raises(ConversionError):
        lookup.to_canonical(["42"])
    kd = conv("kingdee_ref")
    assert kd.to_canonical({"FNumber": "C0001"}) == kd.to_canonical({"Number": "C0001"}) == kd.to_canonical("C0001") == "C0001"
    assert kd.to_system("C0001") == {"FNumber": "C0001"}
    assert conv("kingdee_ref", key="FStaffNumber").to_system("0002") == {"FStaffNumber": "0002"}


def test_bad_options_are_reported_with_the_allowed_ones():
    with pytest.raises(ValueError, match="unknown option"):
        make_converter("decimal", {"placs": 2}, UTC)
    with pytest.raises(ValueError, match="places"):
        make_converter("decimal", {"places": -1}, UTC)
    with pytest.raises(ValueError, match="unknown time zone"):
        parse_timezone("Mars/Base")
    assert parse_timezone("UTC+8").utcoffset(None) == timedelta(hours=8)


def test_defaults_follow_system_type_and_canonical_field():
    deal = ENTITIES["deal"].fields
    account = ENTITIES["account"].fields
    assert default_converter("fxiaoke", "amount", deal["amount"]) == ("fx_number", {})
    assert default_converter("fxiaoke", "close_date", deal["expected_close_date"]) == ("fx_date", {})
    assert default_converter("fxiaoke", "probability", deal["probability"]) == ("integer", {"output": "string"})
    assert default_converter("fxiaoke", "owner", deal["owner"]) == ("fx_employee", {})
    assert default_converter("fxiaoke", "last_modified_time", deal["name"]) == ("fx_datetime", {})
    assert default_converter("zoho", "Owner", deal["owner"]) == ("zoho_owner", {})
    assert default_converter("zoho", "Account_Name", deal["account"]) == ("zoho_lookup", {})
    assert default_converter("zoho", "Closing_Date", deal["expected_close_date"]) == ("zoho_date", {})
    assert default_converter("kingdee", "FCustId", account["partner"]) == ("kingdee_ref", {})
    assert default_converter("kingdee", "FCustId.FNumber", account["partner"]) == ("text", {})
    assert default_converter("kingdee", "FDate", ENTITIES["sales_order"].fields["order_date"]) == ("kingdee_date", {})
    assert default_converter("sql", "credit_limit", account["credit_limit"]) == ("sql_decimal", {})
    assert default_converter("sql", "name", account["name"]) == ("text", {})
    assert set(CONVERTERS) >= {"fx_date", "zoho_datetime", "kingdee_ref", "sql_datetime"}


# -- property-based round trips --------------------------------------------------------

instants = st.datetimes(
    min_value=datetime(1971, 1, 1), max_value=datetime(2099, 12, 31), timezones=st.just(UTC)
).map(lambda d: d.replace(microsecond=d.microsecond // 1000 * 1000))
whole_seconds = instants.map(lambda d: d.replace(microsecond=0))
days = st.dates(min_value=date(1971, 1, 1), max_value=date(2099, 12, 31))
zones = st.sampled_from(ZONES)


@settings(max_examples=150, deadline=None)
@given(instants)
def test_fx_datetime_round_trip(moment):
    c = conv("fx_datetime")
    ms = c.to_system(moment)
    assert c.to_canonical(ms) == moment
    assert c.to_system(c.to_canonical(ms)) == ms


@settings(max_examples=150, deadline=None)
@given(days, zones)
def test_fx_date_round_trip_in_any_zone(day, zone):
    c = conv("fx_date", zone)
    ms = c.to_system(day)
    assert c.to_canonical(ms) == day
    assert c.to_system(c.to_canonical(ms)) == ms


@settings(max_examples=150, deadline=None)
@given(whole_seconds, zones)
def test_zoho_datetime_round_trip_in_any_zone(moment, zone):
    c = conv("zoho_datetime", zone)
    text = c.to_system(moment)
    assert c.to_canonical(text) == moment
    assert c.to_system(c.to_canonical(text)) == text


@settings(max_examples=150, deadline=None)
@given(whole_seconds, zones)
def test_kingdee_local_datetime_round_trip(moment, zone):
    # Local wall-clock text without an offset: system → canonical → system is exact even across DST
    # (a repeated hour reads as its first occurrence and writes back the same text).
    c = conv("kingdee_datetime", zone)
    text = c.to_system(moment)
    assert c.to_system(c.to_canonical(text)) == text
    assert abs(c.to_canonical(text) - moment) <= timedelta(hours=1)


@settings(max_examples=150, deadline=None)
@given(days, zones)
def test_dates_round_trip(day, zone):
    for name in ("zoho_date", "kingdee_date", "sql_date", "date"):
        c = conv(name, zone)
        assert c.to_canonical(c.to_system(day)) == day


decimals = st.decimals(min_value=Decimal("-1e15"), max_value=Decimal("1e15"), places=None, allow_nan=False,
                       allow_infinity=False).filter(lambda d: -12 <= d.as_tuple().exponent <= 0)


@settings(max_examples=200, deadline=None)
@given(decimals)
def test_decimal_round_trips_keep_precision_and_scale(number):
    fx = conv("fx_number")
    text = format(number, "f")
    assert fx.to_canonical(text) == number
    assert fx.to_system(fx.to_canonical(text)) == text  # the same text, scale included
    for name in ("decimal", "kingdee_number", "sql_decimal"):
        c = conv(name)
        out = c.to_system(c.to_canonical(number))
        assert out == number and str(out) == str(number)


user_ids = st.text(alphabet="0123456789ABCDEFGHJKLMNPQRTUWXYZ_", min_size=1, max_size=24)


@settings(max_examples=150, deadline=None)
@given(user_ids, st.text(min_size=1, max_size=10), st.emails())
def test_owner_round_trips(user_id, name, mail):
    fx = conv("fx_employee")
    assert fx.to_system(fx.to_canonical([user_id])) == [user_id]
    zoho = conv("zoho_owner")
    assert zoho.to_system(zoho.to_canonical({"id": user_id, "name": name, "email": mail})) == {"id": user_id}
    assert zoho.to_system(zoho.to_canonical({"id": user_id})) == {"id": user_id}
    kd = conv("kingdee_ref")
    assert kd.to_system(kd.to_canonical({"FNumber": user_id})) == {"FNumber": user_id}


def test_fixed_offset_zone():
    assert parse_timezone("-03:30").utcoffset(None) == -timedelta(hours=3, minutes=30)
    assert isinstance(parse_timezone("+08:00"), timezone)


def test_every_converter_is_exercised_in_this_file():
    from pathlib import Path

    source = Path(__file__).read_text(encoding="utf-8")
    assert [name for name in CONVERTERS if f'"{name}"' not in source] == []
