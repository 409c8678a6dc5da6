"""Fuzzing the template analyser: random text, templates assembled from Jinja grammar
fragments, and mutations of real templates. No exception may escape; each input must
finish (pytest-timeout bounds the whole run); a parsed result is well formed."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from real_templates import ALL

from modelsec.templates import TemplateAnalysis, analyze

FRAGMENTS = [
    "{{",
    "}}",
    "{%",
    "%}",
    "{#",
    "#}",
    " for x in ",
    " endfor ",
    " if ",
    " endif ",
    " set ",
    " macro m(a) ",
    " endmacro ",
    " call m(1) ",
    " endcall ",
    " with a = 1 ",
    " endwith ",
    "x",
    "y",
    "ns",
    "messages",
    "loop",
    "self",
    "cycler",
    "lipsum",
    "namespace",
    "range",
    ".",
    "[",
    "]",
    "(",
    ")",
    "|",
    "~",
    "+",
    "*",
    "%",
    "'",
    '"',
    ",",
    "=",
    ":",
    "::-1",
    "'__cla'",
    "'ss__'",
    "'_'",
    "attr",
    "join",
    "format",
    "replace",
    "reverse",
    "string",
    "list",
    "first",
    "map",
    "items",
    "1",
    "0",
    "-1",
    "true",
    "none",
    "__class__",
    "\\x5f",
    "append",
    "do ",
    "generation",
    "endgeneration",
    "{% raw %}",
    "{% endraw %}",
]


def _well_formed(result: TemplateAnalysis) -> None:
    if result.parsed:
        for issue in result.issues:
            assert issue.kind.value.startswith("MS-TPL-")
            assert issue.message
    else:
        assert result.error


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=400))
def test_random_text(text: str) -> None:
    _well_formed(analyze(text))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(FRAGMENTS), max_size=60))
def test_grammar_fragments(parts: list[str]) -> None:
    _well_formed(analyze("".join(parts)))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(sorted(ALL)),
    st.lists(st.tuples(st.integers(min_value=0), st.sampled_from(FRAGMENTS + ["", " "])), max_size=8),
)
def test_mutated_real_templates(name: str, edits: list[tuple[int, str]]) -> None:
    text = ALL[name]
    for pos, insert in edits:
        pos %= len(text) + 1
        text = text[:pos] + insert + text[pos + 1 :]
    _well_formed(analyze(text))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(ALL)), st.integers(min_value=0))
def test_injected_dunder_is_always_found(name: str, where: int) -> None:
    """Appending an escape to any real template after any of its statements is caught."""
    text = ALL[name]
    cut = [i for i in range(len(text)) if text.startswith("%}", i)]
    pos = cut[where % len(cut)] + 2 if cut else len(text)
    result = analyze(text[:pos] + "{{ (messages|first).__class__ }}" + text[pos:])
    assert result.parsed
    assert any(i.subject == "__class__" for i in result.issues)
