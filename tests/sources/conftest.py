"""Fixtures for the remote-source tests: a Hub test server, moto's S3 server, a throttling
proxy, and an environment without ambient credentials."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator

import pytest
from hf_server import HubServer
from source_helpers import ADMIN, free_port, s3_client


@pytest.fixture(autouse=True)
def no_ambient_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Tests decide every credential: none from the developer's environment or files."""
    for name in (
        "HF_TOKEN",
        "HUGGING_FACE_HUB_TOKEN",
        "HF_ENDPOINT",
        "HF_HUB_OFFLINE",
        "HF_OIDC_RESOURCE",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
    ):
        monkeypatch.delenv(name, raising=False)
    home = tmp_path_factory.mktemp("home")
    import huggingface_hub.constants as hf_constants

    monkeypatch.setattr(hf_constants, "HF_TOKEN_PATH", str(home / "hf-token"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(home / "aws-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(home / "aws-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def hub() -> Iterator[HubServer]:
    server = HubServer().start()
    try:
        yield server
    finally:
        server.stop()


# --- S3 ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


_bucket_counter = 0


@pytest.fixture
def bucket(moto_endpoint: str) -> str:
    """A fresh bucket name per test (moto's state is shared by the session)."""
    global _bucket_counter
    _bucket_counter += 1
    name = f"models-{_bucket_counter}"
    s3_client(moto_endpoint).create_bucket(Bucket=name)
    return name


@pytest.fixture(scope="module")
def moto_with_auth() -> Iterator[tuple[str, dict[str, str]]]:
    """A separate moto server (own process, own state) that enforces IAM: yields the
    endpoint and the keys of a user allowed nothing but ListAllMyBuckets."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(endpoint + "/moto-api/", timeout=1)
                break
            except OSError:
                time.sleep(0.05)
        import boto3

        admin = {"endpoint_url": endpoint, "region_name": "us-east-1", **ADMIN}
        iam = boto3.client("iam", **admin)
        iam.create_user(UserName="outsider")
        key = iam.create_access_key(UserName="outsider")["AccessKey"]
        iam.put_user_policy(
            UserName="outsider",
            PolicyName="nothing-useful",
            PolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [{"Effect": "Allow", "Action": "s3:ListAllMyBuckets", "Resource": "*"}],
                }
            ),
        )
        s3 = boto3.client("s3", **admin)
        s3.create_bucket(Bucket="locked")
        s3.put_object(Bucket="locked", Key="model/weights.bin", Body=b"\0" * 100)
        urllib.request.urlopen(
            urllib.request.Request(
                endpoint + "/moto-api/reset-auth",
                data=b"0",
                method="POST",
                headers={"Content-Type": "text/plain"},
            )
        )
        yield endpoint, {"accessKeyId": key["AccessKeyId"], "secretAccessKey": key["SecretAccessKey"]}
    finally:
        proc.terminate()
        proc.wait(10)
