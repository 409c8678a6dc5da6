"""Which groups govern a reference: label selectors and source matchers, compiled once.

Both are built when a SecurityGroup or ModelSource changes and then only *called* while
answering admission requests, so they are plain closures over precomputed values.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from modelsec.k8s.source import HuggingFaceSource, ModelSourceSpec
from modelsec.metadata import SourceType
from modelsec.references import Reference
from modelsec.references.redirects import endpoint_key, is_the_hub

Selector = Callable[[Mapping[str, str]], bool]


def _nothing(_labels: Mapping[str, str]) -> bool:
    return False


def _everything(_labels: Mapping[str, str]) -> bool:
    return True


def compile_selector(selector: Any) -> Selector:
    """A ``metav1.LabelSelector`` as a predicate over a namespace's labels.

    Absent (None) selects no namespace: a group enforces nothing until told where. ``{}``
    selects every namespace, as in Kubernetes. A malformed selector (reported by
    :func:`selector_problem`, which makes the group invalid) selects *every* namespace:
    the group's judgements are then ERROR everywhere, failing closed, rather than a typo
    quietly switching enforcement off.
    """
    if selector is None:
        return _nothing
    if selector_problem(selector):
        return _everything
    match_labels = tuple((selector.get("matchLabels") or {}).items())
    tests = [
        _expression(e["key"], e["operator"], frozenset(e.get("values") or ()))
        for e in selector.get("matchExpressions") or []
    ]

    def matches(labels: Mapping[str, str]) -> bool:
        for key, value in match_labels:
            if labels.get(key) != value:
                return False
        return all(test(labels) for test in tests)

    return matches


def _expression(key: str, operator: str, values: frozenset[str]) -> Selector:
    """One ``matchExpressions`` entry (already checked by :func:`selector_problem`)."""
    if operator == "In":
        return lambda labels: labels.get(key) in values
    if operator == "NotIn":
        return lambda labels: labels.get(key) not in values
    if operator == "Exists":
        return lambda labels: key in labels
    return lambda labels: key not in labels  # DoesNotExist


def selector_problem(selector: Any) -> str | None:
    if not isinstance(selector, dict):
        return "namespaceSelector is not an object"
    if not isinstance(selector.get("matchLabels") or {}, dict):
        return "namespaceSelector.matchLabels is not a map"
    for expression in selector.get("matchExpressions") or []:
        if not isinstance(expression, dict) or "key" not in expression:
            return "namespaceSelector.matchExpressions entries need a key"
        operator = expression.get("operator")
        if operator not in ("In", "NotIn", "Exists", "DoesNotExist"):
            return f"namespaceSelector operator {operator!r} is not In, NotIn, Exists or DoesNotExist"
        if operator in ("In", "NotIn") and not expression.get("values"):
            return f"namespaceSelector {operator} on {expression['key']!r} needs values"
    return None


def _components(path: str) -> str:
    """Normalised absolute path: prefix checks below compare whole components."""
    return "/" + posixpath.normpath("/" + path).lstrip("/")


def _under(path: str, prefix: str) -> bool:
    if prefix == "/":
        return True
    return path == prefix or path.startswith(prefix + "/")


@dataclass(frozen=True)
class SourceMatcher:
    """Does a reference name a model inside this ModelSource?"""

    name: str
    type: SourceType
    scheme: str
    test: Callable[[Reference], bool]

    def __call__(self, reference: Reference) -> bool:
        return reference.ref.scheme == self.scheme and self.test(reference)


def source_matcher(name: str, spec: ModelSourceSpec) -> SourceMatcher:
    if spec.type == SourceType.LOCAL:
        assert spec.local is not None
        root = _components(spec.local.path)
        return SourceMatcher(name, spec.type, "file", lambda r: _under(_components(r.ref.location), root))
    if spec.type == SourceType.S3:
        assert spec.s3 is not None
        bucket = spec.s3.bucket
        prefix = spec.s3.prefix.strip("/")
        endpoint = endpoint_key(spec.s3.endpoint)

        def s3(reference: Reference) -> bool:
            ref_bucket, _, key = reference.ref.location.partition("/")
            if ref_bucket != bucket:
                return False
            # A reference that names its endpoint (Triton) only matches that endpoint; one
            # that does not uses whatever the server is configured with, so any source of
            # the bucket may govern it.
            if reference.endpoint is not None and endpoint_key(reference.endpoint) != endpoint:
                return False
            return not prefix or _under("/" + key.strip("/"), "/" + prefix)

        return SourceMatcher(name, spec.type, "s3", s3)
    # Hugging Face: an hf:// reference carries no endpoint (mirrors serve the same ids), so a
    # Hub source governs the hf:// references whose org/name matches its model patterns;
    # unless the workload sends its downloads elsewhere (HF_ENDPOINT: the reference carries
    # that endpoint), and then only a source of that endpoint does.
    hub = spec.hugging_face or HuggingFaceSource()  # the struct is optional: Hub defaults
    hub_endpoint = endpoint_key(hub.endpoint)
    if hub.endpoint is None or is_the_hub(hub.endpoint):
        hub_endpoint = None  # the Hub itself: what a reference without an endpoint reads

    def hf(reference: Reference) -> bool:
        if reference.endpoint is not None and endpoint_key(reference.endpoint) != hub_endpoint:
            return False
        return hub.serves(reference.ref.location)

    return SourceMatcher(name, spec.type, "hf", hf)
