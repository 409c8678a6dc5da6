"""Every class of Jinja sandbox-escape technique is reported, with the threat code of its
class. Each case names the code it must produce, so a check that stops firing fails here."""

from __future__ import annotations

import pytest

from modelsec.templates import IssueKind, analyze

INTERNALS = IssueKind.INTERNALS
ASSEMBLED = IssueKind.ASSEMBLED_NAME
COMPUTED = IssueKind.COMPUTED_NAME
GADGET = IssueKind.GADGET
WEB = IssueKind.WEB_GLOBAL
CODE = IssueKind.CODE_EXECUTION
LOADING = IssueKind.TEMPLATE_LOADING
STRING = IssueKind.INTERNALS_STRING

CASES: list[tuple[str, str, IssueKind, str | None]] = [
    # id, template, expected kind, expected subject (None: any)
    # --- direct dunder / private / unsafe attribute access
    ("dot-dunder", "{{ ''.__class__ }}", INTERNALS, "__class__"),
    ("item-dunder", "{{ x['__globals__'] }}", INTERNALS, "__globals__"),
    ("attr-filter-const", "{{ x|attr('__subclasses__') }}", INTERNALS, "__subclasses__"),
    ("private-attr", "{{ c()._module }}", INTERNALS, "_module"),
    ("self-context", "{{ self._TemplateReference__context }}", INTERNALS, "_TemplateReference__context"),
    (
        "self-context-item",
        "{{ self['_TemplateReference__context'] }}",
        INTERNALS,
        "_TemplateReference__context",
    ),
    ("mro-plain", "{{ ''.__class__.mro()[1] }}", INTERNALS, "mro"),
    ("mro-item", "{{ x['mro'] }}", INTERNALS, "mro"),
    ("func-globals", "{{ f.func_globals }}", INTERNALS, "func_globals"),
    ("frame", "{{ g.gi_frame.f_back }}", INTERNALS, "gi_frame"),
    ("getattribute", "{{ x.__getattribute__('a') }}", INTERNALS, "__getattribute__"),
    ("namespace-attr-set", "{% set ns = namespace() %}{% set ns.__dict__ = 1 %}", INTERNALS, "__dict__"),
    # --- lexer escapes are decoded before we look
    ("hex-escape", "{{ x['\\x5f\\x5fclass\\x5f\\x5f'] }}", INTERNALS, "__class__"),
    ("unicode-escape", "{{ x['\\u005f\\u005fclass\\u005f\\u005f'] }}", INTERNALS, "__class__"),
    ("octal-escape", "{{ x|attr('\\137\\137class\\137\\137') }}", INTERNALS, "__class__"),
    # --- names assembled at render time, folded statically
    ("tilde-join", "{{ ''['__cla' ~ 'ss__'] }}", ASSEMBLED, "__class__"),
    ("plus-join", "{{ x['__cla' + 'ss__'] }}", ASSEMBLED, "__class__"),
    ("repeat", "{{ x|attr('_'*2 ~ 'class' ~ '_'*2) }}", ASSEMBLED, "__class__"),
    ("format-filter", "{{ x|attr('%s%sclass%s%s'|format('_','_','_','_')) }}", ASSEMBLED, "__class__"),
    ("format-filter-kw", "{{ x|attr('%(a)s%(a)sclass%(a)s%(a)s'|format(a='_')) }}", ASSEMBLED, "__class__"),
    (
        "percent-c",
        "{{ x|attr(('%c%c'|format(95,95)) ~ 'class' ~ ('%c%c'|format(95,95))) }}",
        ASSEMBLED,
        "__class__",
    ),
    ("mod-operator", "{{ x[('%s' % '__cl') ~ 'ass__'] }}", ASSEMBLED, "__class__"),
    ("join-filter", "{{ x|attr(['_','_','class','_','_']|join) }}", ASSEMBLED, "__class__"),
    ("join-method", "{{ x|attr('_'.join(['','','class','',''])) }}", ASSEMBLED, "__class__"),
    ("replace", "{{ x|attr('ZZclassZZ'|replace('Z','_')) }}", ASSEMBLED, "__class__"),
    ("reverse-slice", "{{ x|attr('__ssalc__'[::-1]) }}", ASSEMBLED, "__class__"),
    ("reverse-filter", "{{ x|attr('__ssalc__'|reverse|join) }}", ASSEMBLED, "__class__"),
    ("lower-filter", "{{ x|attr('__CLASS__'|lower) }}", ASSEMBLED, "__class__"),
    ("lower-method", "{{ x|attr('__CLASS__'.lower()) }}", ASSEMBLED, "__class__"),
    ("title-keeps-underscores", "{{ x|attr('__class__'|title) }}", ASSEMBLED, "__class__"),
    ("split-pick", "{{ x|attr('a __class__ b'.split()[1]) }}", ASSEMBLED, "__class__"),
    ("center-replace", "{{ x|attr('class'|center(9)|replace(' ', '_')) }}", ASSEMBLED, "__class__"),
    ("set-chain", "{% set a = '__cla' %}{% set b = a ~ 'ss__' %}{{ x[b] }}", ASSEMBLED, "__class__"),
    ("set-block", "{% set n %}__class__{% endset %}{{ x|attr(n) }}", ASSEMBLED, "__class__"),
    ("set-block-mixed", "{% set n %}{{ '_' }}_class__{% endset %}{{ x|attr(n) }}", ASSEMBLED, "__class__"),
    ("set-block-filter", "{% set n | lower %}__CLASS__{% endset %}{{ x|attr(n) }}", ASSEMBLED, "__class__"),
    ("with-block", "{% with k = '__cla' ~ 'ss__' %}{{ x[k] }}{% endwith %}", ASSEMBLED, "__class__"),
    ("for-tuple", "{% for a, b in [('__cla', 'ss__')] %}{{ x[a ~ b] }}{% endfor %}", ASSEMBLED, "__class__"),
    (
        "macro-param",
        "{% macro m(k) %}{{ x[k] }}{% endmacro %}{{ m('__cla' ~ 'ss__') }}",
        ASSEMBLED,
        "__class__",
    ),
    (
        "macro-kwarg",
        "{% macro m(k='a') %}{{ x|attr(k) }}{% endmacro %}{{ m(k='__cla' ~ 'ss__') }}",
        ASSEMBLED,
        "__class__",
    ),
    (
        "macro-default",
        "{% macro m(k='__cla' ~ 'ss__') %}{{ x|attr(k) }}{% endmacro %}{{ m() }}",
        ASSEMBLED,
        "__class__",
    ),
    ("cond-expr", "{{ x[('__cla' if true else 'a') ~ 'ss__'] }}", ASSEMBLED, "__class__"),
    ("or-operand", "{{ x[(none or '__cla') ~ 'ss__'] }}", ASSEMBLED, "__class__"),
    ("default-filter", "{{ x[(undefined_var|default('__cla')) ~ 'ss__'] }}", ASSEMBLED, "__class__"),
    ("dict-kw-keys", "{{ x[dict(__class__=1)|list|first] }}", ASSEMBLED, "__class__"),
    ("dict-literal-keys", "{{ x[{'__cl' ~ 'ass__': 1}|list|first] }}", ASSEMBLED, "__class__"),
    ("deep-list", "{% set l = [[[['__cla' ~ 'ss__']]]] %}{{ x[l[0][0][0][0]] }}", ASSEMBLED, "__class__"),
    ("first-filter", "{{ x[['__cla' ~ 'ss__']|first] }}", ASSEMBLED, "__class__"),
    (
        "items-loop",
        "{% for k, v in {'a': '__cla' ~ 'ss__'}|items %}{{ x[v] }}{% endfor %}",
        ASSEMBLED,
        "__class__",
    ),
    (
        "format-method-assembled",
        "{{ ('{0.' ~ '_' * 2 ~ 'class' ~ '_' * 2 ~ '}').format(x) }}",
        INTERNALS,
        "__class__",
    ),
    ("module-name-assembled", "{{ g['o' ~ 's'] }}", ASSEMBLED, "os"),
    # --- names that cannot be resolved: fail closed
    (
        "loop-accumulated",
        "{% set ns = namespace(s='') %}{% for c in ['_','_','c','l','a','s','s','_','_'] %}"
        "{% set ns.s = ns.s ~ c %}{% endfor %}{{ x[ns.s] }}",
        COMPUTED,
        None,
    ),
    (
        "append-built",
        "{% set l = [] %}{% set _ = l.append('__cla') %}{% set _ = l.append('ss__') %}{{ x[l|join] }}",
        COMPUTED,
        None,
    ),
    (
        "alias-mutation",
        "{% set a = [] %}{% set b = a %}{% do b.append('_') %}{{ x[a|join ~ 'x'] }}",
        COMPUTED,
        None,
    ),
    (
        "lipsum-char-pick",
        "{% set s = lipsum|string %}{{ x[s[10] ~ s[10] ~ 'class' ~ s[10] ~ s[10]] }}",
        COMPUTED,
        None,
    ),
    (
        "generator-repr-pick",
        "{% set u = (()|select|string)[24] %}{{ x[u*2 ~ 'class' ~ u*2] }}",
        COMPUTED,
        None,
    ),
    ("chr-built", "{{ x[''.join([chr(95), chr(95)])] }}", COMPUTED, None),
    ("attr-from-data", "{{ x|attr(messages[0].content) }}", COMPUTED, None),
    ("attr-from-transformed-data", "{{ x|attr(messages[0].content|lower) }}", COMPUTED, None),
    ("data-replace-inserts-constant", "{{ d[m.role|replace('user', '_' ~ '_class__')] }}", COMPUTED, None),
    ("data-padded-with-constant", "{{ d[m.role.ljust(12, '_')] }}", COMPUTED, None),
    ("data-joined-with-constant", "{{ d['__' ~ m.role ~ '__'] }}", COMPUTED, None),
    ("data-key-on-object", "{{ joiner()[m.role|lower] }}", COMPUTED, None),
    ("attr-from-variable", "{% set n = messages[0].content %}{{ x|attr(n) }}", COMPUTED, None),
    ("item-data-key-on-object", "{{ cycler()[messages[0].content] }}", COMPUTED, None),
    (
        "format-method-computed",
        "{% set f = '{0.' ~ messages[0].content ~ '}' %}{{ f.format(x) }}",
        COMPUTED,
        None,
    ),
    ("format-method-data", "{{ messages[0].content.format(x) }}", COMPUTED, None),
    ("map-computed-filter", "{{ xs|map(messages[0].role, '__class__')|list }}", INTERNALS, "__class__"),
    ("dyn-kwargs-attribute", "{% set d = {'attribute': 'a'} %}{{ xs|map(**d)|list }}", COMPUTED, None),
    (
        "recursive-loop-arg",
        "{% for a in [1] recursive %}{{ x[loop(['__cla' ~ 'ss__'])] }}{% endfor %}",
        COMPUTED,
        None,
    ),
    ("escaping-macro", "{% macro m(k) %}{{ x[k] }}{% endmacro %}{% set f = m %}{{ f('a') }}", COMPUTED, None),
    # --- attribute names in filter arguments
    ("map-attribute", "{{ messages|map(attribute='__class__')|list }}", INTERNALS, "__class__"),
    ("map-attr-filter", "{{ messages|map('attr', '__class__')|list }}", INTERNALS, "__class__"),
    ("selectattr", "{{ messages|selectattr('__class__')|list }}", INTERNALS, "__class__"),
    ("sort-dotted", "{{ messages|sort(attribute='role.__class__') }}", INTERNALS, "__class__"),
    ("groupby", "{{ messages|groupby('__class__') }}", INTERNALS, "__class__"),
    ("join-attribute", "{{ messages|join(',', attribute='__class__') }}", INTERNALS, "__class__"),
    ("sum-attribute", "{{ messages|sum(attribute='_private') }}", INTERNALS, "_private"),
    ("format-field", "{{ '{0.__class__}'.format(x) }}", INTERNALS, "__class__"),
    ("format-map-field", "{{ '{a.__globals__}'.format_map(d) }}", INTERNALS, "__globals__"),
    # --- Jinja globals as gadgets
    ("cycler-init", "{{ cycler.__init__.__globals__ }}", GADGET, "cycler"),
    ("joiner-init", "{{ joiner.__init__ }}", GADGET, "joiner"),
    ("namespace-uncalled", "{{ namespace.__init__ }}", GADGET, "namespace"),
    ("lipsum-globals", "{{ lipsum.__globals__['os'] }}", GADGET, "lipsum"),
    ("range-alias", "{% set r = range %}{{ r }}", GADGET, "range"),
    ("dict-string", "{{ dict|string }}", GADGET, "dict"),
    ("self-reference", "{{ self }}", GADGET, "self"),
    # --- web-framework globals (SSTI payloads, including non-dunder ones)
    ("request-args", "{{ request.args.cmd }}", WEB, "request"),
    ("config-items", "{{ config.items() }}", WEB, "config"),
    ("config-secret", "{{ config['SECRET_KEY'] }}", WEB, "config"),
    ("session", "{{ session }}", WEB, "session"),
    ("url-for-globals", "{{ url_for.__globals__ }}", WEB, "url_for"),
    # --- code execution, modules, files, environment
    ("eval", "{{ eval('1+1') }}", CODE, "eval"),
    ("exec", "{{ exec('x') }}", CODE, "exec"),
    ("import-builtin", "{{ __import__('os') }}", CODE, "__import__"),
    ("builtins-name", "{{ __builtins__ }}", CODE, "__builtins__"),
    ("getattr-builtin", "{{ getattr(x, 'y') }}", CODE, "getattr"),
    ("open-builtin", "{{ open('/etc/passwd').read() }}", CODE, "open"),
    ("os-attribute", "{{ g.os.listdir('/') }}", CODE, "os"),
    ("subprocess-item", "{{ m['subprocess'] }}", CODE, "subprocess"),
    ("popen", "{{ x.popen('id').read() }}", CODE, "popen"),
    ("system-call", "{{ x.system('id') }}", CODE, "system"),
    ("open-method", "{{ x.open('/etc/shadow') }}", CODE, "open"),
    ("environ", "{{ x.environ['HOME'] }}", CODE, "environ"),
    ("import-module", "{{ x.import_module('os') }}", CODE, "import_module"),
    # --- loading other templates
    ("include", "{% include 'secrets.txt' %}", LOADING, "include"),
    ("import", "{% import 'macros.j2' as m %}", LOADING, "import"),
    ("from-import", "{% from 'macros.j2' import x %}", LOADING, "fromimport"),
    ("extends", "{% extends 'base.j2' %}", LOADING, "extends"),
    ("include-computed", "{% include messages[0].content %}", LOADING, "include"),
    # --- payload material in string constants
    ("eval-payload-string", '{{ f(\'__import__("os").system("id")\') }}', STRING, "__import__"),
    ("namespace-kw-dunder", "{{ namespace(__init__=1) }}", STRING, "__init__"),
    ("dict-key-dunder", "{% set d = {'__class__': 1} %}{{ d }}", STRING, "__class__"),
]


@pytest.mark.parametrize("template, kind, subject", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_attack_is_reported(template: str, kind: IssueKind, subject: str | None) -> None:
    result = analyze(template)
    assert result.parsed, result.error
    found = [(i.kind, i.subject) for i in result.issues]
    if subject is None:
        assert kind in {k for k, _ in found}, found
    else:
        assert (kind, subject) in found, found


def test_case_ids_are_unique() -> None:
    ids = [c[0] for c in CASES]
    assert len(ids) == len(set(ids))


def test_assembled_name_names_resolved_value() -> None:
    issue = next(i for i in analyze("{{ x['__cla' ~ 'ss__'] }}").issues if i.kind is ASSEMBLED)
    assert "__class__" in issue.message and issue.line == 1


def test_literal_lookup_is_not_double_reported_as_string() -> None:
    kinds = [i.kind for i in analyze("{{ x|attr('__class__') }}").issues]
    assert kinds == [INTERNALS]


def test_issue_lines_point_into_template() -> None:
    issues = analyze("{{ messages[0]['role'] }}\n\n{{ x.__class__ }}").issues
    assert [(i.kind, i.line) for i in issues] == [(INTERNALS, 3)]
