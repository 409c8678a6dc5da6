"""Real chat templates and the legitimate constructs they use analyse clean."""

from __future__ import annotations

import pytest
from real_templates import ALL

from modelsec.templates import analyze


@pytest.mark.parametrize("name", sorted(ALL))
def test_real_template_is_clean(name: str) -> None:
    result = analyze(ALL[name])
    assert result.parsed, result.error
    assert result.issues == [], [(i.kind.value, i.subject, i.message) for i in result.issues]


LEGITIMATE = {
    "namespace-plain": "{% set ns = namespace(found=false) %}{% for m in messages %}"
    "{% if m.role == 'system' %}{% set ns.found = true %}{% endif %}{% endfor %}{{ ns.found }}",
    "namespace-attr-named-like-module": "{% set ns = namespace(sys='') %}{% set ns.sys = 'x' %}{{ ns.sys }}",
    "loop-variables": "{% for m in messages %}{{ loop.index }}{{ loop.index0 }}{{ loop.first }}"
    "{{ loop.last }}{{ loop.length }}{{ loop.revindex }}{{ loop.cycle('a', 'b') }}{% endfor %}",
    "strftime-now": "{{ strftime_now('%Y-%m-%d') }}",
    "raise-exception": "{{ raise_exception('Only user and assistant roles are supported!') }}",
    "constant-indexing": "{{ messages[0]['role'] }}{{ messages[-1]['content'] }}{{ messages[1:] }}",
    "computed-integer-index": "{% for m in messages %}{{ messages[loop.index0 - 1].role }}"
    "{{ messages[(messages|length - 1) - loop.index0] }}{% endfor %}",
    "reverse-messages": "{% for m in messages[::-1] %}{{ m.content }}{% endfor %}",
    "role-map": "{% set names = {'user': 'Human', 'assistant': 'AI'} %}"
    "{% for m in messages %}{{ names[m['role']] }}{% endfor %}",
    "data-key-from-data": "{% for k in tool %}{{ tool[k] }}{% endfor %}",
    "data-key-transformed": "{% set names = {'user': 'U', 'assistant': 'A'} %}{% for m in messages %}"
    "{{ names[m.role|lower] }}{{ names[m.role.strip()] }}{{ names[m.role|trim|upper] }}"
    "{{ names[m.name ~ m.role] }}{{ names[(m.content.split(':'))[0]] }}{% endfor %}",
    "constant-key-variable": "{% set key = 'content' %}{{ messages[0][key] }}",
    "tojson-kwargs": "{{ tools|tojson(indent=4, ensure_ascii=False) }}",
    "string-methods": "{{ messages[0].content.strip().split('</think>')[-1].lstrip('\\n').title() }}",
    "map-attribute-plain": "{{ messages|map(attribute='content')|join('\\n') }}",
    "selectattr-plain": "{{ messages|selectattr('role', 'equalto', 'user')|list|length }}",
    "format-method-plain": "{{ '{} ({})'.format(tool.name, tool.description) }}",
    "format-filter-plain": "{{ '%s: %s'|format(m.role, m.content) }}",
    "range-called": "{% for i in range(3) %}{{ i }}{% endfor %}",
    "dict-called": "{% set d = dict(a=1, b=2) %}{{ d.a }}",
    "cycler-called": "{% set c = cycler('odd', 'even') %}{{ c.next() }}",
    "media-marker": "{{ '<__media__>' }}{{ '<start_of_image>' }}",
    "comment-with-dunder": "{# uses no __class__ at all #}{{ bos_token }}",
    "text-with-dunder": "Docs mention __init__ in plain template text.{{ bos_token }}",
    "macro-with-caller": "{% macro box(t) %}[{{ t }}]{{ caller() }}{% endmacro %}{% call box('x') %}y{% endcall %}",
    "is-tests": "{{ x is defined }}{{ x is string }}{{ x is mapping }}{{ x is none }}",
    "loopcontrols": "{% for m in messages %}{% if loop.index > 2 %}{% break %}{% endif %}{% continue %}{% endfor %}",
    "message-class-key": "{% for message in messages %}{% if message.class == 'important' %}!{% endif %}{% endfor %}",
}


@pytest.mark.parametrize("template", LEGITIMATE.values(), ids=list(LEGITIMATE))
def test_legitimate_construct_is_clean(template: str) -> None:
    result = analyze(template)
    assert result.parsed, result.error
    assert result.issues == [], [(i.kind.value, i.subject, i.message) for i in result.issues]
