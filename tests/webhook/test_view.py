"""The view's records, parsed once per watch event."""

from __future__ import annotations

from webhook_helpers import SHA, group, scan, source, view

from modelsec.k8s.enforcement import EnforcementMode, ErrorAction, PendingAction
from modelsec.k8s.naming import scan_key
from modelsec_webhook.view import group_record, scan_record, sinks


def test_scan_record_keeps_what_admission_needs() -> None:
    record = scan_record(
        scan(
            "hf://org/m",
            SHA,
            "g",
            "BLOCKED",
            failed=["LoadTimeCodeExecution"],
            warned=["ApprovedFormats"],
            findings=7,
        )
    )
    assert record is not None
    assert record.key == scan_key("hf://org/m", SHA, "g")
    assert record.failed == ("LoadTimeCodeExecution",) and record.has_verdict
    assert record.warnings == (("ApprovedFormats", "ApprovedFormats: not approved"),)
    assert len(record.findings) == 3 and record.findings_total == 7


def test_scan_record_of_a_malformed_object() -> None:
    assert scan_record({"metadata": {"name": "x"}, "spec": {"model": 5}}) is None


def test_group_record_states_and_settings() -> None:
    ready = group_record(
        group(
            "g",
            "s",
            enforcement={"mode": "Warn", "pendingAction": "AllowWithWarning", "errorAction": "Allow"},
        )
    )
    assert ready.state == "ready" and ready.problem is None
    assert ready.enforcement.mode == EnforcementMode.WARN
    assert ready.enforcement.pending_action == PendingAction.ALLOW_WITH_WARNING
    assert ready.enforcement.error_action == ErrorAction.ALLOW
    assert group_record(group("g", "s", state="none")).state == "validating"
    assert group_record(group("g", "s", state="stale", generation=3)).state == "validating"
    assert group_record(group("g", "s", state="not-ready")).state == "not-ready"


def test_group_record_problems() -> None:
    unknown_rule = group_record(group("g", "s", [{"name": "NoSuchRule"}]))
    assert unknown_rule.problem and "unknown rule" in unknown_rule.problem
    bad_selector = group_record(
        group("g", "s", selector={"matchExpressions": [{"key": "k", "operator": "In"}]})
    )
    assert bad_selector.problem and "needs values" in bad_selector.problem


def test_sinks_track_adds_updates_deletes_and_relists() -> None:
    v = view(source("hub"), group("g", "hub"))
    s = sinks(v)
    first = scan("hf://org/m", SHA, "g", "ALLOWED")
    generation = v.generation
    s["modelscans"].upsert(first)
    assert v.scan(scan_key("hf://org/m", SHA, "g")) is not None and v.generation > generation
    s["modelscans"].delete(first)
    assert v.scans == {} and v.scan_keys == {}
    s["modelscans"].replace([first, scan("hf://org/n", SHA, "g")])
    assert len(v.scan_keys) == 2
    s["modelsources"].delete(source("hub"))
    assert v.by_scheme == {}  # the group lost its source: it governs nothing


def test_namespace_versions_move_only_when_labels_change() -> None:
    v = view()
    before = v.namespaces["team-a"].version
    generation = v.generation
    sinks(v)["namespaces"].upsert(
        {"metadata": {"name": "team-a", "labels": dict(v.namespaces["team-a"].labels)}}
    )
    assert v.namespaces["team-a"].version == before
    sinks(v)["namespaces"].upsert({"metadata": {"name": "team-a", "labels": {"team": "z"}}})
    assert v.namespaces["team-a"].version > before
    assert v.generation == generation  # namespace changes do not flush every decision
