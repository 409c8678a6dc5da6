import re

from modelsec.k8s.naming import scan_key, scan_name

DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def test_deterministic_and_distinct() -> None:
    a = scan_name("hf://org/bert-base", "abc", "team-a")
    assert a == scan_name("hf://org/bert-base", "abc", "team-a")
    assert a.startswith("bert-base-")
    assert a != scan_name("hf://org/bert-base", "abc", "team-b")
    assert a != scan_name("hf://org/bert-base", "abd", "team-a")
    assert a != scan_name("hf://other/bert-base", "abc", "team-a")


def test_revision_suffix_and_field_are_the_same_scan() -> None:
    assert scan_name("hf://org/m@abc", None, "g") == scan_name("hf://org/m", "abc", "g")


def test_always_a_valid_name() -> None:
    for model in (
        "file:///models/Weird Name!.PKL",
        "s3://b/..",
        "file:///",
        "hf://o/-._-",
        "file:///m/" + "x" * 500,
    ):
        name = scan_name(model, None, "g")
        assert DNS_SUBDOMAIN.match(name), name
        assert len(name) <= 253
    assert len(scan_key("file:///a", None, "g")) == 16
