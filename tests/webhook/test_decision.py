"""The decision: references x governing groups x verdicts -> deny / allow / warn / audit."""

from __future__ import annotations

import argparse
from typing import Any

import pytest
from webhook_helpers import SHA, group, scan, source, view

from modelsec.references import Extraction, Invalid, Reference, Unresolved, to_model_ref
from modelsec_webhook.command import configure
from modelsec_webhook.decision import Settings, Status, UnresolvedAction, decide
from modelsec_webhook.messages import MAX_MESSAGE, MAX_WARNING, MAX_WARNINGS

HF = "hf://org/model"
PINNED = f"{HF}@{SHA}"
TEAM_A = {"team": "a", "kubernetes.io/metadata.name": "team-a"}


def refs(
    *texts: str, origin: str = "annotation modelsec.io/models", endpoint: str | None = None
) -> Extraction:
    return Extraction(tuple(Reference(to_model_ref(t), endpoint, (origin,)) for t in texts))


def hub(*objects: dict[str, Any], **group_args: Any):  # a Hub source, group g-hub, and objects
    rules = group_args.pop("rules", None)
    return view(source("hub"), group("g-hub", "hub", rules, **group_args), *objects)


def test_blocked_denies_naming_model_group_rule_finding_and_scan() -> None:
    v = hub(scan(HF, SHA, "g-hub", "BLOCKED", failed=["LoadTimeCodeExecution"], findings=3))
    decision = decide(refs(PINNED), "team-a", TEAM_A, v)
    assert not decision.allowed
    message = decision.message
    for expected in (
        PINNED,
        "(annotation modelsec.io/models)",
        "BLOCKED by SecurityGroup g-hub",
        "LoadTimeCodeExecution failed",
        "MS-PKL-100 in /models/evil-0.pkl",
        "os.system called at load time",
        "kubectl get modelscan",
    ):
        assert expected in message
    assert "evil-0.pkl" in message and "evil-2.pkl" in message
    assert decision.scans == ()


def test_allowed_admits_with_non_blocking_failures_as_warnings() -> None:
    v = hub(scan(HF, SHA, "g-hub", "ALLOWED", warned=["ApprovedFormats"]))
    decision = decide(refs(PINNED), "team-a", TEAM_A, v)
    assert decision.allowed and decision.message == ""
    assert decision.warnings == (
        "modelsec: hf://org/model@0123456789ab (g-hub): ApprovedFormats: ApprovedFormats: not approved",
    )
    assert [j.status for j in decision.judgements] == [Status.ALLOWED]
    assert (
        "judgements",
        f'[{{"model":"{PINNED}","group":"g-hub","status":"ALLOWED","mode":"Enforce","effect":"none"}}]',
    ) in decision.audit


def test_unscanned_model_is_denied_pending_and_its_scan_requested() -> None:
    decision = decide(refs(PINNED), "team-a", TEAM_A, hub())
    assert not decision.allowed
    assert "scan pending, retry shortly" in decision.message
    (wanted,) = decision.scans
    assert (wanted.group, str(wanted.reference.ref)) == ("g-hub", PINNED)
    assert wanted.name in decision.message


@pytest.mark.parametrize("phase", [None, "Pending", "Running"])
def test_scan_without_verdict_is_pending_not_requested_again(phase: str | None) -> None:
    v = hub(scan(HF, SHA, "g-hub", None, phase=phase))
    decision = decide(refs(PINNED), "team-a", TEAM_A, v)
    assert not decision.allowed and "retry shortly" in decision.message and decision.scans == ()


def test_pending_action_allow_with_warning() -> None:
    decision = decide(refs(PINNED), "team-a", TEAM_A, hub(enforcement={"pendingAction": "AllowWithWarning"}))
    assert decision.allowed and decision.scans  # still asks for the scan
    assert any("PENDING" in w for w in decision.warnings)


def test_error_verdict_denies_by_default_and_can_be_allowed() -> None:
    failed = scan(HF, SHA, "g-hub", "ERROR", phase="Failed", reason="could not inspect x.bin")
    denied = decide(refs(PINNED), "team-a", TEAM_A, hub(failed))
    assert (
        not denied.allowed
        and "could not inspect x.bin" in denied.message
        and "failing closed" in denied.message
    )
    allowed = decide(refs(PINNED), "team-a", TEAM_A, hub(failed, enforcement={"errorAction": "Allow"}))
    assert allowed.allowed and any("ERROR" in w for w in allowed.warnings)


def test_warn_mode_admits_blocked_models_with_a_warning() -> None:
    v = hub(scan(HF, SHA, "g-hub", "BLOCKED", failed=["LoadTimeCodeExecution"]), enforcement={"mode": "Warn"})
    decision = decide(refs(PINNED), "team-a", TEAM_A, v)
    assert decision.allowed and decision.events == ()
    assert decision.warnings[0].startswith("modelsec: hf://org/model@0123456789ab BLOCKED (g-hub, Warn)")
    assert all(len(w) <= MAX_WARNING for w in decision.warnings)


def test_audit_mode_admits_silently_with_an_event_and_audit_annotation() -> None:
    v = hub(
        scan(HF, SHA, "g-hub", "BLOCKED", failed=["LoadTimeCodeExecution"]), enforcement={"mode": "Audit"}
    )
    decision = decide(refs(PINNED), "team-a", TEAM_A, v)
    assert decision.allowed and decision.warnings == ()
    (event,) = decision.events
    assert "BLOCKED by SecurityGroup g-hub" in event
    audit = dict(decision.audit)
    assert '"effect":"audit"' in audit["judgements"] and "BLOCKED" in audit["audit-would-deny"]


def test_groups_apply_only_in_namespaces_they_select() -> None:
    v = hub(scan(HF, SHA, "g-hub", "BLOCKED", failed=["X"]))
    assert decide(refs(PINNED), "team-b", {"team": "b"}, v).allowed
    assert decide(refs(PINNED), "team-b", {"team": "b"}, v).judgements == ()


def test_absent_selector_selects_nothing_and_empty_selects_everything() -> None:
    blocked = scan(HF, SHA, "g-hub", "BLOCKED", failed=["X"])
    nowhere = view(
        source("hub"),
        {**group("g-hub", "hub"), "spec": {"sourceRef": "hub", "rules": [{"name": "LoadTimeCodeExecution"}]}},
        blocked,
    )
    everywhere = hub(blocked, selector={})
    assert decide(refs(PINNED), "team-a", TEAM_A, nowhere).allowed
    assert not decide(refs(PINNED), "team-b", {"team": "b"}, everywhere).allowed


def test_match_expressions() -> None:
    v = hub(
        scan(HF, SHA, "g-hub", "BLOCKED", failed=["X"]),
        selector={
            "matchExpressions": [
                {"key": "team", "operator": "In", "values": ["a", "c"]},
                {"key": "sandbox", "operator": "DoesNotExist"},
            ]
        },
    )
    assert not decide(refs(PINNED), "team-a", TEAM_A, v).allowed
    assert decide(refs(PINNED), "team-a", {**TEAM_A, "sandbox": "yes"}, v).allowed


def test_references_no_group_governs_are_allowed() -> None:
    assert decide(refs("s3://bucket/x", "file:///elsewhere/m.pt"), "team-a", TEAM_A, hub()).allowed


def test_every_governing_group_judges() -> None:
    v = view(
        source("hub"),
        group("g1", "hub"),
        group("g2", "hub"),
        scan(HF, SHA, "g1", "ALLOWED"),
        scan(HF, SHA, "g2", "BLOCKED", failed=["ModelBlocked"]),
    )
    decision = decide(refs(PINNED), "team-a", TEAM_A, v)
    assert not decision.allowed and "SecurityGroup g2" in decision.message and "g1" not in decision.message
    assert [(j.group, j.status) for j in decision.judgements] == [
        ("g1", Status.ALLOWED),
        ("g2", Status.BLOCKED),
    ]


def test_group_being_validated_or_changed_is_pending() -> None:
    for state in ("validating", "stale"):
        v = hub(scan(HF, SHA, "g-hub", "ALLOWED"), state=state, generation=2)
        decision = decide(refs(PINNED), "team-a", TEAM_A, v)
        assert not decision.allowed and "being validated" in decision.message


def test_group_that_cannot_judge_is_error() -> None:
    decision = decide(refs(PINNED), "team-a", TEAM_A, hub(state="not-ready"))
    assert not decision.allowed and "SourceNotFound" in decision.message


def test_invalid_group_spec_is_error_fail_closed() -> None:
    bad = group("g-hub", "hub", enforcement={"mode": "Sometimes"})
    decision = decide(refs(PINNED), "team-a", TEAM_A, view(source("hub"), bad))
    assert not decision.allowed and "is invalid" in decision.message


def test_verdict_for_an_older_group_version_is_pending() -> None:
    v = hub(scan(HF, SHA, "g-hub", "ALLOWED", digest="old"), digest="new")
    decision = decide(refs(PINNED), "team-a", TEAM_A, v)
    assert not decision.allowed and "re-evaluated" in decision.message and decision.scans == ()


def test_latest_verdict_wins_among_scans_of_one_triple() -> None:
    v = hub(
        scan(
            HF, SHA, "g-hub", "BLOCKED", failed=["X"], name="users-own", completed_at="2026-01-01T00:00:00Z"
        ),
        scan(HF, SHA, "g-hub", "ALLOWED", completed_at="2026-02-01T00:00:00Z"),
    )
    assert decide(refs(PINNED), "team-a", TEAM_A, v).allowed


# --- RevisionPinned, judged on the reference ----------------------------------------------


def test_revision_pinned_blocking_denies_unpinned_without_requesting_a_scan() -> None:
    v = hub(rules=[{"name": "LoadTimeCodeExecution"}, {"name": "RevisionPinned", "mode": "Blocking"}])
    decision = decide(refs(HF, "hf://org/other@main"), "team-a", TEAM_A, v)
    assert not decision.allowed and decision.scans == ()
    assert "hf://org/model (annotation modelsec.io/models) is BLOCKED" in decision.message
    assert "RevisionPinned failed: no revision" in decision.message
    assert "branch or tag" in decision.message or "moves" in decision.message


def test_revision_pinned_non_blocking_warns_and_the_scan_decides() -> None:
    v = hub(
        scan(HF, None, "g-hub", "ALLOWED"),
        rules=[{"name": "LoadTimeCodeExecution"}, {"name": "RevisionPinned", "mode": "NonBlocking"}],
    )
    decision = decide(refs(HF), "team-a", TEAM_A, v)
    assert decision.allowed
    assert decision.warnings == (
        "modelsec: hf://org/model (g-hub): RevisionPinned: no revision: pin a commit sha or version id",
    )


def test_revision_pinned_accepts_commit_shas() -> None:
    v = hub(
        scan(HF, SHA, "g-hub", "ALLOWED"),
        rules=[{"name": "LoadTimeCodeExecution"}, {"name": "RevisionPinned", "mode": "Blocking"}],
    )
    decision = decide(refs(PINNED), "team-a", TEAM_A, v)
    assert decision.allowed and decision.warnings == ()


def test_revision_pinned_does_not_apply_to_local_paths() -> None:
    v = view(
        source("local", "Local", path="/models"),
        group("g-local", "local", [{"name": "LoadTimeCodeExecution"}, {"name": "RevisionPinned"}]),
        scan("file:///models/x.pt", None, "g-local", "ALLOWED"),
    )
    assert decide(refs("file:///models/x.pt"), "team-a", TEAM_A, v).allowed


# --- sources: which references a group governs ---------------------------------------------


@pytest.mark.parametrize(
    "reference, endpoint, governed",
    [
        ("s3://models/team/a/x", None, True),
        ("s3://models/team/a", None, True),
        ("s3://models/team/ab/x", None, False),  # whole path components
        ("s3://models/other/x", None, False),
        ("s3://elsewhere/team/a/x", None, False),
        ("s3://models/team/a/x", "http://minio:9000", True),
        ("s3://models/team/a/x", "https://other:9000", False),
    ],
)
def test_s3_sources_govern_their_bucket_prefix_and_endpoint(
    reference: str, endpoint: str | None, governed: bool
) -> None:
    v = view(
        source("store", "S3", bucket="models", prefix="team/a/", endpoint="http://minio:9000"),
        group("g-s3", "store"),
    )
    decision = decide(refs(reference, endpoint=endpoint), "team-a", TEAM_A, v)
    assert bool(decision.judgements) is governed


@pytest.mark.parametrize(
    "reference, governed",
    [
        ("file:///models/team/x.pt", True),
        ("file:///models/team", True),
        ("file:///models/teamx/y", False),
        ("file:///models/team/../other/x", False),
        ("file:///etc/passwd", False),
    ],
)
def test_local_sources_govern_paths_under_them(reference: str, governed: bool) -> None:
    v = view(source("local", "Local", path="/models/team/"), group("g-local", "local"))
    assert bool(decide(refs(reference), "team-a", TEAM_A, v).judgements) is governed


def test_group_whose_source_is_missing_governs_nothing() -> None:
    v = view(group("g-orphan", "no-such-source"))
    assert decide(refs(PINNED), "team-a", TEAM_A, v).judgements == ()


# --- what the workload itself says --------------------------------------------------------


def test_invalid_explicit_references_deny() -> None:
    extraction = Extraction(
        invalid=(Invalid("gs://b/x", "annotation modelsec.io/models", "not a model reference"),)
    )
    decision = decide(extraction, "team-a", TEAM_A, hub())
    assert not decision.allowed and "'gs://b/x' in annotation modelsec.io/models" in decision.message


UNRESOLVED = Extraction(unresolved=(Unresolved("container tei: env MODEL_ID", "it comes from Secret s"),))


@pytest.mark.parametrize(
    "action, allowed, warned", [("Allow", True, False), ("Warn", True, True), ("Deny", False, False)]
)
def test_unresolved_models_where_no_group_applies_follow_the_setting(
    action: str, allowed: bool, warned: bool
) -> None:
    decision = decide(
        UNRESOLVED, "team-b", {"team": "b"}, hub(), Settings(unresolved_action=UnresolvedAction(action))
    )
    assert decision.allowed is allowed and bool(decision.warnings) is warned


@pytest.mark.parametrize("action", ["Allow", "Warn", "Deny"])
def test_unresolved_models_are_denied_where_an_enforce_group_applies(action: str) -> None:
    # Whatever the setting: the group covering the namespace cannot judge the model.
    decision = decide(
        UNRESOLVED, "team-a", TEAM_A, hub(), Settings(unresolved_action=UnresolvedAction(action))
    )
    assert not decision.allowed
    assert (
        "container tei: env MODEL_ID: cannot judge the model it names: it comes from Secret s; "
        "SecurityGroup g-hub covers namespace team-a"
    ) in decision.message


@pytest.mark.parametrize(
    "enforcement, effect",
    [
        ({"mode": "Warn"}, "warn"),
        ({"mode": "Audit"}, "audit"),
        ({"errorAction": "Allow"}, "warn"),
    ],
)
def test_unresolved_models_follow_the_covering_groups_enforcement(
    enforcement: dict[str, str], effect: str
) -> None:
    decision = decide(UNRESOLVED, "team-a", TEAM_A, hub(enforcement=enforcement))
    assert decision.allowed
    assert bool(decision.warnings) is (effect == "warn") and bool(decision.events) is (effect == "audit")


def test_the_strictest_covering_group_decides_for_unresolved_models() -> None:
    v = view(
        source("hub"),
        source("s3", "S3", bucket="models"),
        group("g-warn", "hub", enforcement={"mode": "Warn"}),
        group("g-s3", "s3"),
    )
    decision = decide(UNRESOLVED, "team-a", TEAM_A, v)
    assert not decision.allowed and "SecurityGroup g-s3 covers" in decision.message


def test_unresolved_models_in_a_namespace_not_yet_seen_are_denied_when_groups_exist() -> None:
    assert not decide(UNRESOLVED, "brand-new", None, hub()).allowed
    assert decide(UNRESOLVED, "brand-new", None, view()).allowed


def test_malformed_objects_deny() -> None:
    decision = decide(Extraction(malformed="spec.containers[0] is not an object"), "team-b", {}, view())
    assert (
        not decision.allowed
        and "the object cannot be read: spec.containers[0] is not an object" in decision.message
    )


def test_a_malformed_namespace_selector_covers_every_namespace_and_fails_closed() -> None:
    broken = group("g-hub", "hub", selector={"matchExpressions": [{"key": "team", "operator": "In"}]})
    decision = decide(refs(PINNED), "team-b", {"team": "b"}, view(source("hub"), broken))
    assert not decision.allowed and "is invalid" in decision.message and "needs values" in decision.message


def test_unknown_namespace_denies_when_a_group_could_apply() -> None:
    decision = decide(refs(PINNED), "brand-new", None, hub())
    assert not decision.allowed and "not in the webhook's view yet" in decision.message
    assert decide(refs("s3://x/y"), "brand-new", None, hub()).allowed


# --- bounds -------------------------------------------------------------------------------------


def test_many_blocked_models_stay_within_the_message_limit() -> None:
    models = [f"hf://org/model-{i:03d}-with-a-rather-long-name-to-fill-the-line" for i in range(60)]
    v = hub(*(scan(m, SHA, "g-hub", "BLOCKED", failed=["LoadTimeCodeExecution"], findings=5) for m in models))
    decision = decide(refs(*(f"{m}@{SHA}" for m in models)), "team-a", TEAM_A, v)
    assert not decision.allowed
    assert len(decision.message) <= MAX_MESSAGE
    assert decision.message.startswith("modelsec: 60 model check(s) failed")
    assert "more (kubectl get modelscans)" in decision.message.splitlines()[-1]


def test_many_warnings_are_bounded() -> None:
    models = [f"hf://org/m{i}" for i in range(30)]
    v = hub(*(scan(m, SHA, "g-hub", "ALLOWED", warned=["ApprovedFormats", "LicenseExists"]) for m in models))
    decision = decide(refs(*(f"{m}@{SHA}" for m in models)), "team-a", TEAM_A, v)
    assert decision.allowed and len(decision.warnings) == MAX_WARNINGS
    assert decision.warnings[-1] == "modelsec: and 51 more warning(s)"
    assert all(len(w) <= MAX_WARNING and w.isprintable() for w in decision.warnings)


def test_unresolved_action_flag_keeps_its_words() -> None:
    # --unresolved-action is read from Deployments already written: the words must not change.
    parser = argparse.ArgumentParser()
    configure(parser)
    assert parser.parse_args([]).unresolved_action == UnresolvedAction.WARN == "Warn"
    for word, member in [
        ("Allow", UnresolvedAction.ALLOW),
        ("Warn", UnresolvedAction.WARN),
        ("Deny", UnresolvedAction.DENY),
    ]:
        assert UnresolvedAction(parser.parse_args(["--unresolved-action", word]).unresolved_action) is member
    with pytest.raises(SystemExit):
        parser.parse_args(["--unresolved-action", "deny"])
