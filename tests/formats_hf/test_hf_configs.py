"""Where templates live: tokenizer_config.json (string and list forms), chat_template.json,
standalone .jinja files, YAML configs, any config value; detection by content; bounded
parsing of JSON and YAML (duplicate keys, python tags, billion laughs, deep nesting)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from real_templates import ALL as REAL  # noqa: E402

from modelsec.bytesource import BytesSource
from modelsec.context import Limits
from modelsec.engine import ENGINE_ERROR, Engine
from modelsec.policy import Outcome, evaluate, load_group
from modelsec.rules.base import EvaluationInput, SourceType

EVIL = "{{ cycler.__init__.__globals__.os.popen('id').read() }}"
OBFUSCATED = "{% set n = '__cla' ~ 'ss__' %}{{ ''|attr(n) }}"


def scan_bytes(name: str, data: bytes, limits: Limits | None = None):
    return Engine(limits).scan_source(name, BytesSource(data))


def verdict(path: Path) -> Outcome:
    report = Engine().scan_path(path)
    return evaluate(load_group("local-default"), EvaluationInput(report, SourceType.LOCAL)).outcome


def threats(result) -> set[str]:
    return {f.threat for f in result.findings}


# --- tokenizer_config.json and friends -----------------------------------------------------


@pytest.mark.parametrize("name", sorted(REAL))
def test_real_templates_in_tokenizer_config_are_allowed(tmp_path: Path, name: str) -> None:
    path = tmp_path / "tokenizer_config.json"
    path.write_text(
        json.dumps(
            {
                "tokenizer_class": "PreTrainedTokenizerFast",
                "chat_template": REAL[name],
                "bos_token": "<s>",
                "model_max_length": 131072,
            }
        )
    )
    assert verdict(path) == Outcome.ALLOWED


def test_string_chat_template_blocks(tmp_path: Path) -> None:
    path = tmp_path / "tokenizer_config.json"
    path.write_text(json.dumps({"chat_template": EVIL}))
    result = Engine().scan_file(path)
    assert result.format == "json"
    assert {"MS-TPL-001", "MS-TPL-004", "MS-TPL-006"} <= threats(result)
    assert all(f.details.get("template") == "chat_template" for f in result.findings)
    assert verdict(path) == Outcome.BLOCKED


def test_template_after_a_head_of_whitespace_is_found(tmp_path: Path) -> None:
    """json.loads skips any whitespace before the document: 70 KiB of it hid the file from
    JSON detection, which looked at the head only (red team, 2026-12-07)."""
    path = tmp_path / "tokenizer_config.json"
    path.write_text(" " * (70 << 10) + json.dumps({"chat_template": EVIL}))
    assert "MS-TPL-001" in threats(Engine().scan_file(path))
    assert verdict(path) == Outcome.BLOCKED


def test_a_template_file_is_analysed_as_the_raw_text_loaders_render(tmp_path: Path) -> None:
    """chat_template.jinja is read by name as text. Valid JSON whose escapes put the payload
    inside a comment of the decoded view, or a NUL in its head, hid it (red team,
    2026-12-07): the raw text is analysed whatever else the bytes are."""
    payload = "{{ cycler.__init__.__globals__.os.popen('id').read() }}"
    as_json = '["{\\u0023 ' + payload + ' \\u0023}", "{% for m in messages %}{% endfor %}"]'
    assert json.loads(as_json)[0].startswith("{#")  # the decoded view: a Jinja comment
    for text in (as_json, "Hi\x00" + payload):
        path = tmp_path / "chat_template.jinja"
        path.write_text(text)
        assert "MS-TPL-001" in threats(Engine().scan_file(path)), text
        assert verdict(path) == Outcome.BLOCKED


def test_a_tokenizer_config_with_keras_looking_keys_still_has_its_template_analysed(tmp_path: Path) -> None:
    path = tmp_path / "tokenizer_config.json"
    config = {"chat_template": EVIL, "model_config": {"class_name": "Sequential", "config": {"layers": []}}}
    path.write_text(json.dumps(config))
    assert "MS-TPL-001" in threats(Engine().scan_file(path))
    assert verdict(path) == Outcome.BLOCKED


def test_list_of_named_templates(tmp_path: Path) -> None:
    path = tmp_path / "tokenizer_config.json"
    path.write_text(
        json.dumps(
            {
                "chat_template": [
                    {"name": "default", "template": REAL["chatml"]},
                    {"name": "tool_use", "template": OBFUSCATED},
                ]
            }
        )
    )
    result = Engine().scan_file(path)
    assert {f.details["template"] for f in result.findings} == {"chat_template[1].template"}
    assert "MS-TPL-002" in threats(result)


def test_chat_template_json(tmp_path: Path) -> None:
    path = tmp_path / "chat_template.json"
    path.write_text(json.dumps({"chat_template": OBFUSCATED}))
    assert verdict(path) == Outcome.BLOCKED


def test_any_config_value_that_is_a_template(tmp_path: Path) -> None:
    path = tmp_path / "processor_config.json"
    path.write_text(json.dumps({"processor": {"prompts": [{"system": "x", "format": EVIL}]}}))
    result = Engine().scan_file(path)
    assert {f.details["template"] for f in result.findings} == {"processor.prompts[0].format"}


def test_unparseable_template_under_template_key_fails_closed(tmp_path: Path) -> None:
    path = tmp_path / "tokenizer_config.json"
    path.write_text(json.dumps({"chat_template": "{% for m in messages %}{{ m.content }"}))
    result = Engine().scan_file(path)
    assert [i.code for i in result.incompletes] == ["MS-TPL-090"]
    report = Engine().scan_path(path)
    assert (
        evaluate(load_group("local-default"), EvaluationInput(report, SourceType.LOCAL)).outcome
        == Outcome.ERROR
    )


def test_template_syntax_in_ordinary_values_is_text(tmp_path: Path) -> None:
    # tokenizer.json of a code model: vocabulary entries such as "{{" or "{%-"
    path = tmp_path / "tokenizer.json"
    vocab = {"{{": 1, "{%": 2, "}}{{": 3}
    merges = ["{ {", "{{ {", "{% -", "{{ x }}"]
    path.write_text(
        json.dumps(
            {
                "model": {"vocab": vocab, "merges": merges},
                "added_tokens": [{"content": "{%"}, {"content": "}}{{-"}],
            }
        )
    )
    result = Engine().scan_file(path)
    assert result.findings == [] and result.incompletes == []


def test_duplicate_keys_are_reported_and_every_value_analysed(tmp_path: Path) -> None:
    path = tmp_path / "tokenizer_config.json"
    path.write_text(
        '{"chat_template": "' + EVIL.replace("'", "\\u0027") + '", "chat_template": "{{ bos_token }}"}'
    )
    result = Engine().scan_file(path)
    assert {"MS-CFG-001", "MS-TPL-001"} <= threats(result)


def test_malformed_json_is_not_inspected(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_bytes(b'{"chat_template": "{{ x }}", ' + b" " * 70000 + b"broken")
    result = Engine().scan_file(path)
    assert result.format == "json"
    assert [i.code for i in result.incompletes] == ["MS-CFG-091"]


def test_deeply_nested_json_is_not_a_crash() -> None:
    data = b'{"a": ' * 100_000 + b"1" + b"}" * 100_000
    result = scan_bytes("config.json", data)
    assert [i.code for i in result.incompletes] == ["MS-CFG-091"]


def test_json_size_limit() -> None:
    data = json.dumps({"chat_template": EVIL, "pad": "x" * 5000}).encode()
    result = scan_bytes("tokenizer_config.json", data, Limits(max_header_bytes=1024))
    assert [i.code for i in result.incompletes] == ["MS-GEN-003"]


def test_json_detection_is_by_content() -> None:
    from modelsec import formats

    json_scanner = formats.by_name("json")
    assert json_scanner is not None
    assert json_scanner.detect(b'{"a": 1}', BytesSource(b'{"a": 1}'), "weights.bin")
    assert json_scanner.detect(b"\xef\xbb\xbf [1, 2]", BytesSource(b"\xef\xbb\xbf [1, 2]"), "x")
    assert not json_scanner.detect(b"{{ a }}", BytesSource(b"{{ a }}"), "config.json")
    assert not json_scanner.detect(b"{% if a %}{% endif %}", BytesSource(b"{% if a %}{% endif %}"), "a.json")
    assert not json_scanner.detect(b'{"a": 1', BytesSource(b'{"a": 1'), "config.json")


# --- standalone templates -------------------------------------------------------------------


@pytest.mark.parametrize(
    "filename", ["chat_template.jinja", "x.j2", "prompt.template", "no_extension", "README"]
)
def test_standalone_template_detected_by_content(tmp_path: Path, filename: str) -> None:
    path = tmp_path / filename
    path.write_text("{% for m in messages %}{{ m.content }}{% endfor %}\n" + EVIL)
    result = Engine().scan_file(path)
    assert result.format == "jinja"
    assert "MS-TPL-001" in threats(result)


def test_text_without_template_logic_is_not_a_template(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("Double braces {{ open an expression; {% a statement.\n")
    assert Engine().scan_file(path).format != "jinja"


def test_template_named_file_that_does_not_parse_fails_closed(tmp_path: Path) -> None:
    path = tmp_path / "chat_template.jinja"
    path.write_text("{% for m in messages %}{{ m.content }")
    result = Engine().scan_file(path)
    assert result.format == "jinja"
    assert [i.code for i in result.incompletes] == ["MS-TPL-090"]


def test_additional_chat_templates_directory(tmp_path: Path) -> None:
    (tmp_path / "additional_chat_templates").mkdir()
    (tmp_path / "additional_chat_templates" / "tool_use.jinja").write_text(OBFUSCATED)
    (tmp_path / "chat_template.jinja").write_text(REAL["llama3.1-tools"])
    report = Engine().scan_path(tmp_path)
    found = [f for f in report.all_findings() if f.threat.startswith("MS-TPL")]
    assert found and all("tool_use.jinja" in f.file for f in found)


def test_template_inside_zip(tmp_path: Path) -> None:
    import zipfile

    path = tmp_path / "model.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("model/tokenizer_config.json", json.dumps({"chat_template": EVIL}))
        zf.writestr("model/chat_template.jinja", OBFUSCATED)
    report = Engine().scan_path(path)
    files = {f.file for f in report.all_findings() if f.threat.startswith("MS-TPL")}
    assert any(f.endswith("!model/tokenizer_config.json") for f in files), files
    assert any(f.endswith("!model/chat_template.jinja") for f in files), files


# --- YAML -------------------------------------------------------------------------------------


def test_yaml_template_values(tmp_path: Path) -> None:
    path = tmp_path / "model.yaml"
    path.write_text(
        "model_name: x\nchat_template: |\n  {% for m in messages %}{{ m.content }}{% endfor %}\n"
        'prompts:\n  - name: a\n    template: "{{ request.args.x }}"\n'
    )
    result = Engine().scan_file(path)
    assert result.format == "yaml"
    assert threats(result) == {"MS-TPL-005"}
    assert [f.details["template"] for f in result.findings] == ["prompts[0].template"]


def test_benign_yaml_is_allowed(tmp_path: Path) -> None:
    path = tmp_path / "config.yml"
    path.write_text(
        "chat_template: " + json.dumps(REAL["qwen2-tools"]) + "\nparameters:\n  temperature: 0.7\n"
    )
    assert verdict(path) == Outcome.ALLOWED


def test_yaml_detected_without_yaml_name(tmp_path: Path) -> None:
    path = tmp_path / "settings"
    path.write_text("a: 1\nb:\n  - x\n  - y\n")
    assert Engine().scan_file(path).format == "yaml"


def test_prose_is_not_yaml(tmp_path: Path) -> None:
    path = tmp_path / "NOTES"
    path.write_text("Note: this model is great.\nIt was trained: somewhere, sometime: - maybe\n  and [here\n")
    assert Engine().scan_file(path).format != "yaml"


@pytest.mark.parametrize(
    "tag",
    [
        "!!python/object/apply:os.system ['id']",
        "!!python/name:os.system ''",
        "!!python/module:os ''",
        "!<tag:yaml.org,2002:python/object/new:subprocess.Popen> [['id']]",
    ],
)
def test_yaml_python_tags(tmp_path: Path, tag: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(f"name: x\nhook: {tag}\n")
    result = Engine().scan_file(path)
    assert "MS-CFG-002" in threats(result)
    assert verdict(path) == Outcome.BLOCKED


@pytest.mark.parametrize(
    "text",
    [
        "!!python/object/apply:os.system ['id']\n",  # the document is the tagged node
        "{model: !!python/object/apply:os.system ['id']}\n",
        "[1, !!python/object/apply:os.system ['id']]\n",
        "? model\n: !!python/object/apply:os.system ['id']\n",
        "&cfg\nmodel: !!python/object/apply:os.system ['id']\n",
        "\"model(v2)\": !!python/object/apply:os.system ['id']\n",
        "!<tag:yaml.org,2002:%70ython/object/apply:os.system> ['id']\n",  # a percent-escaped tag
    ],
    ids=["tag-first", "flow-map", "flow-sequence", "explicit-key", "anchor-first", "quoted-key", "escaped"],
)
def test_yaml_python_tags_whatever_the_first_line(tmp_path: Path, text: str) -> None:
    """PyYAML's unsafe loaders construct a python/ tag wherever the document puts it; the
    first-line test knew only "key:" starts (red team, 2026-12-07)."""
    path = tmp_path / "config.yaml"
    path.write_text(text)
    assert "MS-CFG-002" in threats(Engine().scan_file(path))
    assert verdict(path) == Outcome.BLOCKED


def test_yaml_tag_directive_cannot_hide_python_tags(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("%TAG !p! tag:yaml.org,2002:python/\n---\nhook: !p!object/apply:os.system ['id']\n")
    assert "MS-CFG-002" in threats(Engine().scan_file(path))


def test_yaml_duplicate_keys(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("chat_template: '{{ bos_token }}'\nchat_template: '{{ x.__class__ }}'\n")
    assert {"MS-CFG-001", "MS-TPL-001"} <= threats(Engine().scan_file(path))


def test_billion_laughs_costs_its_size(tmp_path: Path) -> None:
    lines = ["a0: &a0 ['{{ x }}', '{{ x }}']"]
    for i in range(1, 30):
        lines.append(
            f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}]"
        )
    path = tmp_path / "laughs.yaml"
    path.write_text("\n".join(lines) + "\n")
    result = Engine().scan_file(path)
    assert result.format == "yaml"
    assert result.incompletes == [] and result.findings == []


def test_yaml_node_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from modelsec.formats import yaml_config

    monkeypatch.setattr(yaml_config, "MAX_NODES", 1000)
    path = tmp_path / "big.yaml"
    path.write_text("items:\n" + "".join(f"  - {i}\n" for i in range(2000)))
    result = Engine().scan_file(path)
    assert [i.code for i in result.incompletes] == ["MS-GEN-003"]


def test_yaml_nesting_limit(tmp_path: Path) -> None:
    path = tmp_path / "deep.yaml"
    path.write_text("a: " + "[" * 5000 + "]" * 5000 + "\n")
    result = Engine().scan_file(path)
    assert [i.code for i in result.incompletes] == ["MS-GEN-003"]


def test_malformed_yaml_is_not_inspected(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("chat_template: '{{ x }}'\nbad: [unclosed\n")
    result = Engine().scan_file(path)
    assert result.format == "yaml"
    assert [i.code for i in result.incompletes] == ["MS-CFG-091"]


def test_yaml_aliases_walked_once_but_found(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("base: &t '{{ x.__class__ }}'\nuses: [*t, *t, *t]\n")
    result = Engine().scan_file(path)
    assert [f.threat for f in result.findings] == ["MS-TPL-001"]


# --- fuzzing the config scanners ------------------------------------------------------------


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.recursive(
        st.none()
        | st.booleans()
        | st.integers()
        | st.text(max_size=30)
        | st.sampled_from([EVIL, OBFUSCATED, "{{", "{% x %}"]),
        lambda children: (
            st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
        ),
        max_leaves=30,
    )
)
def test_json_values_never_crash(value: object) -> None:
    data = json.dumps({"chat_template": value, "v": value}).encode()
    result = scan_bytes("tokenizer_config.json", data)
    assert not [i for i in result.incompletes if i.code == ENGINE_ERROR], result.incompletes


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.sampled_from(list("ab:-[]{}&*!|>'\"\n #%") + ["  ", "!!python/", "{{", "{%", "<<"]), max_size=120
    )
)
def test_yaml_text_never_crashes(parts: list[str]) -> None:
    result = scan_bytes("config.yaml", "".join(parts).encode())
    assert not [i for i in result.incompletes if i.code == ENGINE_ERROR], result.incompletes


def test_json_lines_are_read_line_by_line(tmp_path: Path) -> None:
    path = tmp_path / "eval.jsonl"
    rows = [json.dumps({"prompt": "p" * 100, "i": i}) for i in range(1000)]
    rows.append(json.dumps({"chat_template": EVIL}))
    path.write_text("\n".join(rows) + "\n")
    result = Engine().scan_file(path)
    assert result.format == "json" and result.incompletes == []
    assert "MS-TPL-001" in threats(result)


def test_long_text_without_delimiters_in_its_head_is_not_read_as_template(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("plain text\n" * 10000 + "{{ x.__class__ }}\n")
    assert Engine().scan_file(path).format != "jinja"
    named = tmp_path / "chat_template.jinja"
    named.write_text("{# " + "plain text\n" * 10000 + " #}{{ x.__class__ }}\n")
    assert "MS-TPL-001" in threats(Engine().scan_file(named))
