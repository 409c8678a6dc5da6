"""The AdmissionReview (``admission.k8s.io/v1``) as it arrives, checked, and the response.

The wire shapes are :class:`typing.TypedDict`\\ s (type hints only: nothing is copied or
converted on the hot path); :func:`parse` checks every field the webhook reads, with a
few ``isinstance`` calls, and returns a small frozen :class:`Request`. The object under
review stays decoded JSON: the extractors check every field they read, and the webhook's
own few reads go through :func:`metadata_of` and :func:`member`, which type what they
return. Two kinds of failure:

- :class:`BadReview`: the body is not an AdmissionReview we can answer at all (not JSON,
  nested deeper than the parser allows, another apiVersion, no ``request.uid``). The
  server answers HTTP 400: there is no uid to put in a response.
- :class:`Refused`: a review with a uid whose request the webhook cannot understand (a
  missing or unknown operation or kind, an object that is not an object, a lone
  surrogate). It is *denied*, with the reason: the API server never sends these, so
  nothing legitimate is lost, and an answer the webhook does not understand must not be
  an admission.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal, NamedTuple, TypedDict, get_args

from modelsec.references.workloads import KSERVE_KINDS, POD_TEMPLATE_PATHS

API_VERSION: Final = "admission.k8s.io/v1"
Operation = Literal["CREATE", "UPDATE", "DELETE", "CONNECT"]
OPERATIONS: Mapping[str, Operation] = {op: op for op in get_args(Operation)}  # checks and narrows
# (group, kind) of everything the webhook configuration routes here (see manifest.RULES).
KINDS: frozenset[tuple[str, str]] = frozenset(
    {
        ("", "Pod"),
        ("", "ReplicationController"),
        ("apps", "Deployment"),
        ("apps", "StatefulSet"),
        ("apps", "DaemonSet"),
        ("apps", "ReplicaSet"),
        ("batch", "Job"),
        ("batch", "CronJob"),
        ("serving.kserve.io", "InferenceService"),
    }
)
# Subresources routed here: kubectl debug adds containers through this one.
SUBRESOURCES: dict[str, frozenset[str]] = {"Pod": frozenset({"ephemeralcontainers"})}
assert {kind for _, kind in KINDS} == set(POD_TEMPLATE_PATHS) | KSERVE_KINDS


# --- wire shapes (https://kubernetes.io/docs/reference/access-authn-authz/extensible-admission-controllers/)


class GroupVersionKind(TypedDict):
    group: str
    version: str
    kind: str


class UserInfo(TypedDict, total=False):
    username: str
    uid: str
    groups: list[str]


class AdmissionRequest(TypedDict, total=False):
    uid: str
    kind: GroupVersionKind
    resource: dict[str, str]
    subResource: str
    name: str
    namespace: str
    operation: Operation
    userInfo: UserInfo
    object: dict[str, Any] | None
    oldObject: dict[str, Any] | None
    dryRun: bool


class AdmissionReview(TypedDict, total=False):
    apiVersion: str
    kind: str
    request: AdmissionRequest


class ResponseStatus(TypedDict):
    code: int
    reason: str
    message: str


class AdmissionResponse(TypedDict, total=False):
    uid: str
    allowed: bool
    status: ResponseStatus
    warnings: list[str]
    auditAnnotations: dict[str, str]
    patchType: Literal["JSONPatch"]
    patch: str  # base64 of the JSON Patch


class AdmissionReviewResponse(TypedDict):
    apiVersion: Literal["admission.k8s.io/v1"]
    kind: Literal["AdmissionReview"]
    response: AdmissionResponse


class OwnerReference(TypedDict, total=False):
    apiVersion: str
    kind: str
    name: str
    uid: str
    controller: bool


class ObjectMeta(TypedDict, total=False):
    """The members of an object's ``metadata`` the webhook reads itself (not the
    extractors), as :func:`metadata_of` returns them: each of the right type, or absent."""

    name: str
    uid: str
    annotations: dict[str, Any]
    ownerReferences: list[OwnerReference]


def response_document(response: AdmissionResponse) -> AdmissionReviewResponse:
    return {"apiVersion": API_VERSION, "kind": "AdmissionReview", "response": response}


# --- checking ---------------------------------------------------------------------------


class BadReview(ValueError):
    """Not an AdmissionReview we can answer; the message says what is wrong."""


class Refused(ValueError):
    """A review whose request cannot be understood: denied with this message."""

    def __init__(self, uid: str, message: str) -> None:
        super().__init__(message)
        self.uid = uid


class Request(NamedTuple):
    """What the webhook reads of an AdmissionRequest, checked. (A NamedTuple: built once
    per review, it costs a fraction of a frozen dataclass.)"""

    uid: str
    operation: Operation
    group: str
    kind: str
    namespace: str
    name: str
    subresource: str
    object: dict[str, Any] | None
    old_object: dict[str, Any] | None
    dry_run: bool
    username: str


def _loads(body: bytes) -> Any:
    try:
        document = json.loads(body)
    except RecursionError:
        raise BadReview("body is nested too deeply to be an AdmissionReview") from None
    except ValueError as exc:  # includes UnicodeDecodeError
        raise BadReview(f"body is not JSON: {exc}") from None
    if b"\\ud" in body or b"\\uD" in body:
        # Go's encoder never escapes non-ASCII, so surrogate escapes only come from other
        # writers; a lone one cannot be encoded again and has no place in an object.
        try:
            json.dumps(document, ensure_ascii=False).encode()
        except UnicodeEncodeError:
            return _Surrogate(document)
        except RecursionError:
            raise BadReview("body is nested too deeply to be an AdmissionReview") from None
    return document


@dataclass(frozen=True)
class _Surrogate:
    """A parsed body holding a lone surrogate: refused once its request's uid is known."""

    document: Any


def parse(body: bytes) -> Request:
    """The checked request of an AdmissionReview body (see the module doc for failures)."""
    document = _loads(body)
    surrogate = isinstance(document, _Surrogate)
    if surrogate:
        document = document.document
    if not isinstance(document, dict) or document.get("kind") != "AdmissionReview":
        raise BadReview("expected an AdmissionReview")
    if document.get("apiVersion") != API_VERSION:
        raise BadReview(
            f"unsupported apiVersion {str(document.get('apiVersion'))[:64]!r}; "
            f"register the webhook with admissionReviewVersions: [v1]"
        )
    request = document.get("request")
    if not isinstance(request, dict) or not isinstance(request.get("uid"), str):
        raise BadReview("request.uid is missing")
    uid = request["uid"]
    if surrogate:
        raise Refused(
            uid,
            "the request holds invalid Unicode (a lone surrogate), which no object "
            "the API server stores can hold",
        )
    return _request(uid, request)


def _request(uid: str, request: Mapping[str, object]) -> Request:
    def refuse(what: str) -> Refused:
        return Refused(uid, f"the AdmissionReview cannot be understood: {what}")

    given = request.get("operation")
    operation = OPERATIONS.get(given) if isinstance(given, str) else None
    if operation is None:
        raise refuse(f"request.operation {_show(given)} is not one of {', '.join(sorted(OPERATIONS))}")
    gvk = request.get("kind")
    if not isinstance(gvk, dict):
        raise refuse("request.kind must be an object with string group, version and kind")
    group, kind = gvk.get("group"), gvk.get("kind")
    if not isinstance(group, str) or not isinstance(kind, str) or not isinstance(gvk.get("version"), str):
        raise refuse("request.kind must be an object with string group, version and kind")
    if (group, kind) not in KINDS:
        raise refuse(
            f"request.kind {_show(group + '/' + kind)} is not a kind this webhook is "
            "registered for (check the ValidatingWebhookConfiguration's rules)"
        )
    subresource = request.get("subResource") or ""
    if not isinstance(subresource, str) or (subresource and subresource not in SUBRESOURCES.get(kind, ())):
        raise refuse(
            f"request.subResource {_show(subresource)} of {kind} is not one this webhook is registered for"
        )
    namespace = request.get("namespace")
    if not isinstance(namespace, str) or not namespace:
        raise refuse(f"request.namespace must name the namespace of the {kind}")
    obj, old = request.get("object"), request.get("oldObject")
    if operation in ("CREATE", "UPDATE") and not isinstance(obj, dict):
        raise refuse(f"request.object must be an object for {operation}")
    if operation == "UPDATE" and not isinstance(old, dict):
        raise refuse("request.oldObject must be an object for UPDATE")
    dry_run = request.get("dryRun", False)
    if dry_run is None:
        dry_run = False
    if not isinstance(dry_run, bool):
        raise refuse("request.dryRun must be true or false")
    name = request.get("name") or ""
    user = request.get("userInfo")
    username = user.get("username") if isinstance(user, dict) else None
    if not isinstance(name, str) or (user is not None and not isinstance(user, dict)):
        raise refuse("request.name and request.userInfo have the wrong types")
    return Request(
        uid,
        operation,
        group,
        kind,
        namespace,
        name,
        subresource,
        obj if isinstance(obj, dict) else None,
        old if isinstance(old, dict) else None,
        dry_run,
        username if isinstance(username, str) else "?",
    )


def _show(value: Any) -> str:
    if value is None:
        return "(missing)"
    if isinstance(value, str):
        return repr(value[:64])
    return f"(a JSON {type(value).__name__})"


# --- reading the object under review -----------------------------------------------------------


def member(value: object, *path: str) -> object:
    """The member of decoded JSON at ``path``; None where a step is missing or not an
    object. Typed ``object``: the caller checks what it got."""
    for step in path:
        if not isinstance(value, dict):
            return None
        value = value.get(step)
    return value


def metadata_of(obj: object) -> ObjectMeta:
    """``obj.metadata`` as far as the webhook reads it, each member checked: a member of
    the wrong type (which the API server never sends) counts as absent."""
    raw = member(obj, "metadata")
    meta: ObjectMeta = {}
    if not isinstance(raw, dict):
        return meta
    name, uid, annotations = raw.get("name"), raw.get("uid"), raw.get("annotations")
    if isinstance(name, str):
        meta["name"] = name
    if isinstance(uid, str):
        meta["uid"] = uid
    if isinstance(annotations, dict):
        meta["annotations"] = annotations
    owners = raw.get("ownerReferences")
    if isinstance(owners, list):
        meta["ownerReferences"] = [_owner(o) for o in owners if isinstance(o, dict)]
    return meta


def _owner(raw: Mapping[str, object]) -> OwnerReference:
    owner: OwnerReference = {}
    for key in ("apiVersion", "kind", "name", "uid"):
        value = raw.get(key)
        if isinstance(value, str):
            owner[key] = value
    if raw.get("controller"):
        owner["controller"] = True
    return owner
