"""Triton model repositories."""

from __future__ import annotations

from reference_helpers import extraction, pod

from modelsec.references.triton import split_endpoint

IMAGE = "nvcr.io/nvidia/tritonserver:24.08-py3"


def test_s3_repository_and_local_store() -> None:
    obj = pod(
        {
            "name": "t",
            "image": IMAGE,
            "command": [
                "tritonserver",
                "--model-repository=s3://models/triton",
                "--model-store",
                "/models/local",
            ],
        }
    )
    found = extraction("Pod", obj).references
    assert [(str(r.ref), r.endpoint) for r in found] == [
        ("file:///models/local", None),
        ("s3://models/triton", None),
    ]


def test_endpoint_inside_the_uri_is_kept_with_the_reference() -> None:
    obj = pod(
        {
            "name": "t",
            "image": IMAGE,
            "args": ["tritonserver", "--model-repository", "s3://https://minio.example:9000/models/triton"],
        },
        {
            "name": "u",
            "image": IMAGE,
            "command": ["tritonserver"],
            "args": ["--model-repository=s3://minio:9000/bucket/repo"],
        },
    )
    found = [(str(r.ref), r.endpoint) for r in extraction("Pod", obj).references]
    assert found == [
        ("s3://bucket/repo", "http://minio:9000"),
        ("s3://models/triton", "https://minio.example:9000"),
    ]


def test_split_endpoint() -> None:
    assert split_endpoint("s3://bucket/key") == ("s3://bucket/key", None)
    assert split_endpoint("s3://HOST:443/b/k") == ("s3://b/k", "http://host:443")


def test_other_clouds_are_not_judged() -> None:
    obj = pod(
        {
            "name": "t",
            "image": IMAGE,
            "command": ["tritonserver", "--model-repository=gs://b/r", "--model-repository=as://acct/c/r"],
        }
    )
    assert not extraction("Pod", obj)
