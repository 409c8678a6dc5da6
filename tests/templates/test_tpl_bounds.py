"""The analyser stays bounded on hostile input: folding refuses to allocate what a template
asks for, limits turn into 'not inspected' results, and nothing is ever rendered."""

from __future__ import annotations

import tracemalloc

import pytest

from modelsec.templates import IssueKind, analyze
from modelsec.templates.parsing import MAX_TEMPLATE_CHARS
from modelsec.templates.values import MAX_STR


@pytest.mark.parametrize(
    "template",
    [
        "{{ x['_' * 1000000000] }}",
        "{{ x['%999999999s'|format('a')] }}",
        "{{ x['%.999999f' % 1.0] }}",
        "{{ x['{:>999999999}'.format('a')] }}",
        "{{ x['a'|center(999999999)] }}",
        "{{ x['a'.zfill(999999999)] }}",
        "{{ x[''|replace('', 'aaaaaaaaaaaaaaaa')|replace('a', 'aaaaaaaaaaaaaaaaaaaa')|replace('a', 'aaaaaaaaaaaaaaaaaaaa')|replace('a', 'aaaaaaaaaaaaaaaaaaaa')] }}",
        "{{ x[range(1000000000)|join] }}",
        "{{ x[(10 ** 10 ** 10)|string] }}",
        "{% set s = 'ab' %}{% for i in range(30) %}{% set s = s ~ s %}{% endfor %}{{ x[s] }}",
        # a 60 KB constant printed by thousands of fields, and a list of it stringified
        "{% set s = '" + "a" * 60000 + "' %}{{ x[('%s' * 4000) % ([s] * 4000)] }}",
        "{% set s = '" + "a" * 60000 + "' %}{{ x[('{0}' * 4000).format(s)] }}",
        "{% set s = '" + "a" * 60000 + "' %}{{ x[([s] * 4000)|string] }}",
        "{% set s = '" + "a" * 60000 + "' %}{{ x[[s] * 4000 ~ 'b'] }}",
    ],
)
def test_folding_never_allocates_what_the_template_asks(template: str) -> None:
    tracemalloc.start()
    try:
        result = analyze(template)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.parsed
    assert peak < 64 * MAX_STR * 16, peak  # a few MiB at most
    # unresolvable, so reported as computed (never silently accepted)
    assert IssueKind.COMPUTED_NAME in {i.kind for i in result.issues}, result.issues


def test_oversized_template_is_not_inspected_with_reason() -> None:
    result = analyze("{{ a }}" + "x" * MAX_TEMPLATE_CHARS)
    assert not result.parsed and result.limit
    assert "exceeds" in (result.error or "")


def test_deep_nesting_is_a_limit_not_a_crash() -> None:
    result = analyze("{{ " + "(" * 5000 + "1" + ")" * 5000 + " }}")
    assert not result.parsed and result.limit


def test_deeply_nested_blocks_are_a_limit_or_parse() -> None:
    src = "{% if a %}" * 400 + "{{ x.__class__ }}" + "{% endif %}" * 400
    result = analyze(src)
    # either analysed (and the dunder found) or reported as too complex: never silently clean
    assert (result.parsed and result.issues) or (not result.parsed and result.limit)


def test_syntax_error_is_reported_not_raised() -> None:
    result = analyze("{% for x in %}{{ }")
    assert not result.parsed and not result.limit
    assert "syntax error" in (result.error or "")


def test_unknown_tag_is_a_syntax_error() -> None:
    # i18n and debug are not enabled: a renderer with the same environment refuses them too
    assert not analyze("{% debug %}").parsed


def test_never_renders(monkeypatch: pytest.MonkeyPatch) -> None:
    import jinja2

    def boom(*args: object, **kwargs: object) -> None:
        raise AssertionError("template was compiled or rendered")

    monkeypatch.setattr(jinja2.Environment, "compile", boom)
    monkeypatch.setattr(jinja2.Environment, "from_string", boom)
    monkeypatch.setattr(jinja2.Template, "render", boom)
    result = analyze("{{ cycler.__init__.__globals__.os.system('touch /tmp/pwned-by-test') }}")
    assert result.parsed and result.issues


def test_many_issues_are_capped() -> None:
    src = "\n".join(f"{{{{ x{i}.__class__ }}}}" for i in range(500))
    result = analyze(src)
    assert result.truncated and len(result.issues) <= 100
