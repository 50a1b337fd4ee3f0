import pytest

from connectors.emulation.fakedata import FakeData
from mapping import normalize as n


@pytest.mark.parametrize(
    ("left", "right"),
    [
        ("深圳市华为技术有限公司", "深圳市华为技术股份有限公司"),
        ("Acme Robotics Co., Ltd.", "ACME ROBOTICS CO LTD"),
        ("Ａｃｍｅ Robotics Inc.", "acme robotics"),
        ("阿里巴巴（中国）有限公司", "阿里巴巴(中国)有限公司"),
        ("北京字节跳动科技有限公司 ", "北京字节跳动科技有限责任公司"),
    ],
)
def test_company_name_variants_compare_equal(left, right):
    assert n.company_name(left) == n.company_name(right)


def test_region_prefix_is_optional():
    assert n.company_name("深圳市华为技术有限公司") != n.company_name("华为技术有限公司")
    assert n.company_name("深圳市华为技术有限公司", strip_region=True) == n.company_name("华为技术", strip_region=True) == "华为技术"
    assert n.company_name("广东省深圳市恒通科技有限公司", strip_region=True) == "恒通科技"
    assert n.company_name("阿里巴巴（中国）有限公司", strip_region=True) == "阿里巴巴"
    assert n.company_name(None) is None and n.company_name("  ") is None


def test_fake_data_variants_match_their_original():
    fake = FakeData(7)
    for _ in range(200):
        company = fake.company()
        variant = fake.variant(company.name)
        assert n.company_name(variant, strip_region=True) == n.company_name(company.name, strip_region=True), (company.name, variant)


def test_strip_company_suffix_keeps_the_rest_for_display():
    assert n.strip_company_suffix("深圳市华为技术有限公司") == "深圳市华为技术"
    assert n.strip_company_suffix("上海汽车集团股份有限公司") == "上海汽车"
    assert n.strip_company_suffix("Acme Robotics Co., Ltd.") == "Acme Robotics"
    assert n.strip_company_suffix("Northwind Trading Limited") == "Northwind Trading"
    assert n.strip_company_suffix("Globex Inc") == "Globex"
    assert n.strip_company_suffix("有限公司") == "有限公司"  # nothing left: unchanged


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ("+86 755 8888 1234", "75588881234"),
        ("0755-88881234", "75588881234"),
        ("(0755) 8888 1234", "75588881234"),
        ("86 755 8888 1234", "75588881234"),
        ("0086 755 8888 1234", "75588881234"),
        ("+86 138-0013-8000", "13800138000"),
        ("１３８００１３８０００", "13800138000"),
        ("0755-88881234 转 801", "75588881234"),
        ("+1 (415) 555-0100", "14155550100"),
        ("", None),
    ],
)
def test_phone(raw, key):
    assert n.phone(raw) == key


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ("https://www.Huawei.com/cn/", "huawei.com"),
        ("HUAWEI.COM.", "huawei.com"),
        ("sales@huawei.com", "huawei.com"),
        ("http://user:pw@www.example.cn:8080/a?b", "example.cn"),
        ("www.例子.中国", "例子.中国"),
        (" ", None),
    ],
)
def test_domain(raw, key):
    assert n.domain(raw) == key


def test_tax_id_and_uscc_check():
    assert n.tax_id(" ９１４４０３００ ７０８４-２２３１ ５n ") == "91440300708422315N"
    fake = FakeData(1)
    code = fake.uscc()
    assert n.is_valid_uscc(n.tax_id(code.lower()))
    assert not n.is_valid_uscc(code[:-1] + ("0" if code[-1] != "0" else "1"))


def test_email_and_person_name():
    assert n.email(" Wang.Wei@Huawei.COM ") == "wang.wei@huawei.com"
    assert n.person_name("  Alice   SMITH ") == "alice smith"
    assert set(n.NORMALIZERS) >= {"company_name", "phone", "domain", "tax_id", "email"}
