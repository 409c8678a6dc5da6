"""The admission policy that makes a ScanResult trustworthy (scan mode ``job``).

RBAC cannot say "a Pod may create only its own result": ``create`` ignores
``resourceNames``. A ValidatingAdmissionPolicy can, because the API server puts the Pod a
ServiceAccount token is bound to into the request's user info
(``authentication.kubernetes.io/pod-name`` and ``pod-uid``). This policy lets a ScanResult
be created only

- by the scan-worker ServiceAccount of the namespace it is created in,
- with a token bound to a Pod, the result named after that Pod and carrying its UID,

and never updated. Deleting stays possible (the garbage collector removes a result with
its Pod). The Helm chart installs the policy and its binding in scan mode ``job``; the
operator refuses to start in that mode without them (failing closed).
"""

from __future__ import annotations

from typing import Any

from modelsec.k8s import GROUP

POLICY_NAME = "modelsec-scan-results"
POD_NAME = "authentication.kubernetes.io/pod-name"
POD_UID = "authentication.kubernetes.io/pod-uid"


def _extra(key: str) -> str:
    return f"request.userInfo.extra[{key!r}]"


def validations(service_account: str) -> list[dict[str, str]]:
    return [
        {
            "expression": "request.operation == 'CREATE'",
            "message": "a ScanResult is written once by its scan Pod and never changed",
        },
        {
            "expression": "request.userInfo.username == 'system:serviceaccount:' + "
            f"object.metadata.namespace + ':{service_account}'",
            "message": f"only the {service_account} ServiceAccount of this namespace (a scan Job's "
            "Pod) may create a ScanResult",
        },
        {
            "expression": f"has(request.userInfo.extra) && {POD_NAME!r} in request.userInfo.extra && "
            f"{POD_UID!r} in request.userInfo.extra && "
            f"object.metadata.name == {_extra(POD_NAME)}[0] && "
            f"object.spec.podUID == {_extra(POD_UID)}[0]",
            "message": "a ScanResult must be named after, and carry the UID of, the Pod whose "
            "token creates it",
        },
    ]


def manifests(service_account: str) -> list[dict[str, Any]]:
    """The ValidatingAdmissionPolicy and its binding (cluster-scoped, Deny)."""
    policy = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": POLICY_NAME},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {
                "resourceRules": [
                    {
                        "apiGroups": [GROUP],
                        "apiVersions": ["*"],
                        "operations": ["CREATE", "UPDATE"],
                        "resources": ["scanresults"],
                    }
                ]
            },
            "validations": validations(service_account),
        },
    }
    binding = {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": POLICY_NAME},
        "spec": {"policyName": POLICY_NAME, "validationActions": ["Deny"]},
    }
    return [policy, binding]
