"""Red-team bypasses of the template analyser (round "formats2", bypasses 4 to 6), each
reported with the class it belongs to, and the legitimate forms next to them kept clean."""

from __future__ import annotations

import pytest

from modelsec.templates import IssueKind, analyze

INTERNALS = IssueKind.INTERNALS
ASSEMBLED = IssueKind.ASSEMBLED_NAME
COMPUTED = IssueKind.COMPUTED_NAME

# Names are assembled so that no string constant holds a dunder (as in the red team's files).
NAMES = (
    '{%- set u = "_" -%}{%- set c = u ~ u ~ "class" ~ u ~ u -%}{%- set i = u ~ u ~ "init" ~ u ~ u -%}'
    '{%- set g = u ~ u ~ "glo" ~ "bals" ~ u ~ u -%}'
)
ENVIRON_FORMAT = '("{0." ~ c ~ "." ~ i ~ "." ~ g ~ "[o" ~ "s].envi" ~ "ron}")'
CLASS = '("__cl" ~ "ass__")'


def _kinds(template: str) -> set[tuple[IssueKind, str | None]]:
    result = analyze(template)
    assert result.parsed, result.error
    return {(i.kind, i.subject) for i in result.issues}


def _clean(template: str) -> None:
    result = analyze(template)
    assert result.parsed, result.error
    assert result.issues == [], [(i.kind.value, i.subject, i.message) for i in result.issues]


# --- bypass 4: filters applied through map() ---------------------------------------------------

MAPPED = {
    "b4-mapmap-attr-redteam": NAMES
    + '{%- set r1 = [[namespace()]]|map("map", "attr", c)|map("list")|list -%}'
    '{%- set r2 = r1|map("map", "attr", i)|map("list")|list -%}'
    '{%- set r3 = r2|map("map", "attr", g)|map("list")|list -%}'
    '{%- set get = [[r3|first|first]]|map("map", "attr", "get")|map("list")|list|first|first -%}'
    '{%- set run = [[get("o" ~ "s")]]|map("map", "attr", "sys" ~ "tem")|map("list")|list|first|first -%}'
    '{{- run("echo PWNED") -}}',
    "b4-map-groupby": f"{{{{ [[namespace()]]|map('groupby', {CLASS})|map('list')|list }}}}",
    "b4-map-sort": f"{{{{ [[namespace()]]|map('sort', false, false, {CLASS})|list }}}}",
    "b4-map-unique": f"{{{{ [[namespace()]]|map('unique', false, {CLASS})|list }}}}",
    "b4-map-sort-keyword": f"{{{{ [[namespace()]]|map('sort', attribute={CLASS})|list }}}}",
    "b4-map-map-keyword": f"{{{{ [[namespace()]]|map('map', attribute={CLASS})|list }}}}",
    "b4-map-map-map-attr": f"{{{{ [[[namespace()]]]|map('map', 'map', 'attr', {CLASS})|list }}}}",
    "b4-map-attr-keyword": f"{{{{ [namespace()]|map('attr', name={CLASS})|list }}}}",
    "b4-attr-keyword": f"{{{{ namespace()|attr(name={CLASS}) }}}}",
}


@pytest.mark.parametrize("template", MAPPED.values(), ids=list(MAPPED))
def test_b4_filter_applied_through_map_is_judged(template: str) -> None:
    assert (ASSEMBLED, "__class__") in _kinds(template)


def test_b4_computed_mapped_filter_judges_every_argument() -> None:
    template = "{{ xs|map(messages[0].content, 'x', attribute=('__cl' ~ 'ass__'))|list }}"
    assert (ASSEMBLED, "__class__") in _kinds(template)


@pytest.mark.parametrize(
    "template",
    [
        "{{ xs|map('lower')|list }}{{ xs|map('join', ', ')|list }}{{ xs|map('replace', 'a', 'b')|list }}",
        "{{ rows|map('map', 'upper')|list }}{{ rows|map('sort', false, false, 'name')|list }}",
        "{{ messages|map(attribute='content')|join('\\n') }}",
    ],
)
def test_b4_plain_mapped_filters_stay_clean(template: str) -> None:
    _clean(template)


# --- bypass 5: str.format reached without a .format(...) call node ----------------------------

BOUND_FORMAT = {
    "b5-format-via-set-redteam": NAMES
    + f"{{%- set f = {ENVIRON_FORMAT}.format -%}}{{{{- f(namespace()) -}}}}",
    "b5-format-via-attr-redteam": NAMES + f"{{{{- ({ENVIRON_FORMAT}|attr('format'))(namespace()) -}}}}",
    "b5-format-via-item": NAMES + f"{{{{- ({ENVIRON_FORMAT}['format'])(namespace()) -}}}}",
    "b5-format-via-map-attr": NAMES
    + f"{{{{- ([{ENVIRON_FORMAT}]|map('attr', 'format')|first)(namespace()) -}}}}",
    "b5-format-via-map-attribute": NAMES
    + f"{{{{- ([{ENVIRON_FORMAT}]|map(attribute='format')|first)(namespace()) -}}}}",
    "b5-format-map-via-set": NAMES + f"{{%- set f = {ENVIRON_FORMAT}.format_map -%}}{{{{- f(d) -}}}}",
    "b5-format-in-namespace": NAMES
    + f"{{%- set ns = namespace(f={ENVIRON_FORMAT}.format) -%}}{{{{- ns.f(namespace()) -}}}}",
}


@pytest.mark.parametrize("template", BOUND_FORMAT.values(), ids=list(BOUND_FORMAT))
def test_b5_bound_format_gets_the_field_check(template: str) -> None:
    kinds = _kinds(template)
    assert {(INTERNALS, "__globals__"), (INTERNALS, "environ")} <= kinds


@pytest.mark.parametrize(
    "template",
    [
        # bos_token comes from the model's own tokenizer files: its fields are the attacker's
        "{% set f = bos_token.format %}{{ f(namespace()) }}",
        "{{ (bos_token|attr('format'))(namespace()) }}",
        "{% set f = (x ~ 'y').format %}{{ f(namespace()) }}",
    ],
)
def test_b5_bound_format_of_a_computed_string_fails_closed(template: str) -> None:
    assert {k for k, _ in _kinds(template)} & {COMPUTED}


@pytest.mark.parametrize(
    "template",
    [
        "{% set f = '{} ({})'.format %}{{ f(tool.name, tool.description) }}",
        "{{ ('{}: {}'|attr('format'))(m.role, m.content) }}",
        # a JSON-schema 'format' key read and used on the spot is never called
        "{% for p in tool.parameters.properties.values() %}{% if p.format is defined %}{{ p.format }}"
        "{% endif %}{% if p['format'] == 'date' %}(date){% endif %}{{ ' (' ~ p.format ~ ')' }}"
        "{{ p.format|tojson }}{% endfor %}",
    ],
)
def test_b5_plain_format_uses_stay_clean(template: str) -> None:
    _clean(template)


# --- bypass 6: names routed through groupby's (grouper, list) tuples ---------------------------


def _grouper(name: str) -> str:
    return f'([{{"a": {name}}}]|groupby("a")|first).grouper'


G_CLASS, G_INIT = _grouper("u ~ u ~ 'class' ~ u ~ u"), _grouper("u ~ u ~ 'init' ~ u ~ u")
G_GLOBALS, G_SYSTEM = _grouper("u ~ u ~ 'glo' ~ 'bals' ~ u ~ u"), _grouper("'sys' ~ 'tem'")
GROUPED = {
    "b6-groupby-grouper-redteam": '{%- set u = "_" -%}'
    f"{{%- set gl = namespace()|attr({G_CLASS})|attr({G_INIT})|attr({G_GLOBALS}) -%}}"
    '{%- set m = gl.get("o" ~ "s") -%}'
    f'{{{{- (m|attr({G_SYSTEM}))("echo PWNED") -}}}}',
    "b6-groupby-index0": f'{{{{ namespace()|attr(([{{"a": {CLASS}}}]|groupby("a")|first)[0]) }}}}',
    "b6-groupby-first-first": f'{{{{ namespace()|attr([{{"a": {CLASS}}}]|groupby("a")|first|first) }}}}',
    "b6-groupby-list-grouper": f'{{{{ namespace()|attr(([{{"a": {CLASS}}}]|groupby("a")|list)[0].grouper) }}}}',
    "b6-groupby-map-grouper": f'{{{{ namespace()|attr([{{"a": {CLASS}}}]|groupby("a")'
    '|map(attribute="grouper")|first) }}',
    "b6-groupby-by-index": f"{{{{ namespace()|attr(([[{CLASS}]]|groupby(0)|first).grouper) }}}}",
    "b6-groupby-unpacked": f'{{% for k, items in [{{"a": {CLASS}}}]|groupby("a") %}}'
    "{{ namespace()|attr(k) }}{% endfor %}",
    "b6-map-attribute-pick": f'{{{{ namespace()|attr([{{"a": {CLASS}}}]|map(attribute="a")|first) }}}}',
    "b6-map-attribute-index": f"{{{{ namespace()|attr([[{CLASS}]]|map(attribute=0)|first) }}}}",
}


@pytest.mark.parametrize("template", GROUPED.values(), ids=list(GROUPED))
def test_b6_names_through_groupby_are_followed(template: str) -> None:
    assert (ASSEMBLED, "__class__") in _kinds(template)


def test_b6_a_name_the_evaluator_cannot_follow_fails_closed() -> None:
    # raise_exception(...) has no value; a lookup keyed by it must not pass as harmless
    assert {k for k, _ in _kinds("{{ namespace()|attr(raise_exception('x')) }}")} == {COMPUTED}


@pytest.mark.parametrize(
    "template",
    [
        "{% for role, ms in messages|groupby('role') %}{{ role }}: {{ ms|length }}{% endfor %}",
        "{% set names = {'user': 'U'} %}{% for g in messages|groupby('role') %}{{ names[g.grouper] }}"
        "{{ names[g[0]] }}{{ g.list|map(attribute='content')|join }}{% endfor %}",
    ],
)
def test_b6_plain_groupby_stays_clean(template: str) -> None:
    _clean(template)
