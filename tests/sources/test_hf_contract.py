"""Contract: the test Hub answers the requests huggingface_hub 2.4 makes, in the shapes it
parses. If huggingface_hub changes an endpoint or a header it relies on, these fail first
(rather than the source tests passing against a server the real client no longer matches).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import huggingface_hub
import pytest
from hf_server import HubFile, HubServer
from huggingface_hub import HfApi, get_hf_file_metadata, hf_hub_download, hf_hub_url
from huggingface_hub.errors import (
    GatedRepoError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

WEIGHTS = b"\x01" * 5000
CONFIG = b'{"model_type": "bert"}'


def test_client_version_is_the_one_the_server_was_written_for() -> None:
    assert huggingface_hub.__version__.split(".")[0] == "2", huggingface_hub.__version__


@pytest.fixture
def repo(hub: HubServer) -> HubServer:
    hub.orgs["acme"] = True
    hub.add_repo(
        "acme/bert",
        {"model.safetensors": WEIGHTS, "config.json": CONFIG, "sub/dir/tokenizer.json": b"{}"},
        card_data={"license": "mit", "tags": ["x"]},
        tags=["license:mit", "safetensors"],
        git_tags=("v1.0",),
    )
    hub.add_repo("acme/gated", {"w.safetensors": WEIGHTS}, gated="auto")
    hub.add_repo("acme/private", {"w.safetensors": WEIGHTS}, private=True)
    hub.tokens["hf_contract_token_00"] = {"acme/private"}
    return hub


def api(hub: HubServer, token: str | bool = False) -> HfApi:
    return HfApi(endpoint=hub.url, token=token)


def test_model_info_with_blobs(repo: HubServer) -> None:
    info = api(repo).model_info("acme/bert", files_metadata=True)
    commit = repo.repos["acme/bert"].commits[-1]
    assert info.id == "acme/bert" and info.author == "acme" and info.sha == commit.sha
    assert info.card_data is not None and info.card_data.license == "mit"
    assert "license:mit" in (info.tags or [])
    assert info.last_modified is not None and info.gated is False and info.private is False
    siblings = {s.rfilename: s for s in info.siblings or []}
    assert set(siblings) == {"model.safetensors", "config.json", "sub/dir/tokenizer.json"}
    weights = siblings["model.safetensors"]
    assert weights.size == len(WEIGHTS)
    assert weights.lfs is not None and weights.lfs.sha256 == hashlib.sha256(WEIGHTS).hexdigest()
    assert weights.lfs.pointer_size == len(commit.files["model.safetensors"].pointer())
    config = siblings["config.json"]
    assert config.lfs is None
    assert config.blob_id == hashlib.sha1(b"blob %d\0" % len(CONFIG) + CONFIG).hexdigest()  # git's id
    # Without blobs=true the Hub lists names only.
    plain = api(repo).model_info("acme/bert")
    assert all(s.size is None for s in plain.siblings or [])
    assert any(r.path == "/api/models/acme/bert" for r in repo.requests)


def test_revision_resolution(repo: HubServer) -> None:
    sha = repo.repos["acme/bert"].refs["main"]
    assert api(repo).model_info("acme/bert", revision="v1.0").sha == sha
    assert api(repo).model_info("acme/bert", revision=sha).sha == sha
    assert any(r.path == "/api/models/acme/bert/revision/v1.0" for r in repo.requests)
    refs = api(repo).list_repo_refs("acme/bert")
    assert [(b.name, b.target_commit) for b in refs.branches] == [("main", sha)]
    assert [(t.name, t.target_commit) for t in refs.tags] == [("v1.0", sha)]
    with pytest.raises(RevisionNotFoundError):
        api(repo).model_info("acme/bert", revision="nope")


def test_tree_recursive_paginated(repo: HubServer) -> None:
    repo.tree_page_size = 2
    entries = list(api(repo).list_repo_tree("acme/bert", recursive=True))
    files = {e.path: e for e in entries if hasattr(e, "blob_id")}
    folders = {e.path for e in entries if not hasattr(e, "blob_id")}
    assert set(files) == {"model.safetensors", "config.json", "sub/dir/tokenizer.json"}
    assert folders == {"sub", "sub/dir"}
    assert files["model.safetensors"].lfs.sha256 == hashlib.sha256(WEIGHTS).hexdigest()
    assert files["config.json"].lfs is None and files["config.json"].size == len(CONFIG)
    assert sum(1 for r in repo.requests if r.path.startswith("/api/models/acme/bert/tree/main")) >= 3
    top = {e.path for e in api(repo).list_repo_tree("acme/bert")}
    assert top == {"model.safetensors", "config.json", "sub"}
    assert {e.path for e in api(repo).list_repo_tree("acme/bert", path_in_repo="sub/dir")} == {
        "sub/dir/tokenizer.json"
    }


def test_paths_info(repo: HubServer) -> None:
    infos = api(repo).get_paths_info("acme/bert", ["model.safetensors", "sub", "missing.bin"])
    by_path = {i.path: i for i in infos}
    assert set(by_path) == {"model.safetensors", "sub"}
    assert by_path["model.safetensors"].lfs.sha256 == hashlib.sha256(WEIGHTS).hexdigest()


def test_resolve_head_and_download(repo: HubServer, tmp_path: Path) -> None:
    sha = repo.repos["acme/bert"].refs["main"]
    url = hf_hub_url("acme/bert", "model.safetensors", endpoint=repo.url)
    meta = get_hf_file_metadata(url, token=False)
    assert meta.commit_hash == sha
    assert meta.etag == hashlib.sha256(WEIGHTS).hexdigest()  # X-Linked-Etag of an LFS file
    assert meta.size == len(WEIGHTS)  # X-Linked-Size (the 302 has no body)
    assert meta.location.startswith(repo.cdn_url)  # a redirect off the Hub is not followed
    small = get_hf_file_metadata(hf_hub_url("acme/bert", "config.json", endpoint=repo.url), token=False)
    assert small.size == len(CONFIG) and small.commit_hash == sha

    path = hf_hub_download(
        "acme/bert", "model.safetensors", endpoint=repo.url, cache_dir=tmp_path, token=False
    )
    assert Path(path).read_bytes() == WEIGHTS
    nested = hf_hub_download(
        "acme/bert", "sub/dir/tokenizer.json", endpoint=repo.url, cache_dir=tmp_path, token=False
    )
    assert Path(nested).read_bytes() == b"{}"


def test_range_requests(repo: HubServer) -> None:
    from huggingface_hub.utils import get_session

    url = hf_hub_url("acme/bert", "config.json", endpoint=repo.url)
    response = get_session().get(url, headers={"Range": "bytes=2-11"})
    assert response.status_code == 206 and response.content == CONFIG[2:12]
    assert response.headers["Content-Range"] == f"bytes 2-11/{len(CONFIG)}"
    tail = get_session().get(url, headers={"Range": "bytes=-5"})
    assert tail.content == CONFIG[-5:]
    beyond = get_session().get(url, headers={"Range": f"bytes={len(CONFIG)}-"})
    assert beyond.status_code == 416
    lfs = get_session().get(
        hf_hub_url("acme/bert", "model.safetensors", endpoint=repo.url), headers={"Range": "bytes=0-9"}
    )
    assert lfs.status_code == 206 and lfs.content == WEIGHTS[:10] and lfs.history[0].status_code == 302


def test_error_codes_map_to_client_exceptions(repo: HubServer) -> None:
    with pytest.raises(RepositoryNotFoundError) as missing:
        api(repo).model_info("acme/missing")
    assert missing.value.response.status_code == 404
    with pytest.raises(RepositoryNotFoundError) as private:
        api(repo).model_info("acme/private")
    assert private.value.response.status_code == 401
    assert api(repo, "hf_contract_token_00").model_info("acme/private").private is True
    assert api(repo).model_info("acme/gated").gated == "auto"  # metadata is public
    with pytest.raises(GatedRepoError):
        get_hf_file_metadata(hf_hub_url("acme/gated", "w.safetensors", endpoint=repo.url), token=False)
    with pytest.raises(RemoteEntryNotFoundError):
        get_hf_file_metadata(hf_hub_url("acme/bert", "nope.bin", endpoint=repo.url), token=False)
    with pytest.raises(RevisionNotFoundError):
        get_hf_file_metadata(
            hf_hub_url("acme/bert", "config.json", revision="nope", endpoint=repo.url), token=False
        )


def test_organization_overview(repo: HubServer) -> None:
    assert api(repo).get_organization_overview("acme").is_verified is True
    repo.users.add("someone")
    assert api(repo).get_user_overview("someone").username == "someone"


def test_throttling_headers_are_understood(repo: HubServer) -> None:
    from huggingface_hub.utils import get_session
    from huggingface_hub.utils._http import parse_ratelimit_headers

    repo.throttle(1, retry_after=7)
    response = get_session().get(f"{repo.url}/api/models/acme/bert")
    assert response.status_code == 429 and response.headers["Retry-After"] == "7"
    info = parse_ratelimit_headers(response.headers)
    assert info is not None and info.remaining == 0


def test_file_served_differently_from_its_listing_is_possible(repo: HubServer) -> None:
    """The server can serve bytes that differ from the listed LFS sha256 (integrity tests)."""
    repo.add_repo("acme/bad", {"w.bin": HubFile("w.bin", data=b"good", served=b"evil")})
    from huggingface_hub.utils import get_session

    response = get_session().get(hf_hub_url("acme/bad", "w.bin", endpoint=repo.url))
    assert response.content == b"evil"
