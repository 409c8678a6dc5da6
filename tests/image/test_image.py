"""The OCI image hack/build-image.sh builds: its configuration, what is (and is not) inside,
and modelsec running inside it as the image's own user on a read-only root filesystem,
without a network and without a shell."""

from __future__ import annotations

import gzip
import json
import re
import subprocess
import tarfile

import pytest
from image_helpers import REPO, Image

pytestmark = [pytest.mark.image, pytest.mark.slow, pytest.mark.timeout(3600)]

# The issue's goal is 250 MB uncompressed; the image is about 371 MB (docs/install.md, "The
# image": the kubernetes client, numpy, the integrity extra's sigstore stack, bytecode).
# This is a regression bound, not the goal.
SIZE_BUDGET_MB = 390


def _version(commit: str) -> str:
    text = subprocess.run(["git", "-C", str(REPO), "show", f"{commit}:src/modelsec/__init__.py"],
                          capture_output=True, text=True, check=True).stdout
    match = re.search(r'__version__ = "([^"]+)"', text)
    assert match
    return match.group(1)


def test_configuration_runs_modelsec_as_a_numeric_non_root_user(image: Image) -> None:
    config = image.config["config"]
    uid, _, gid = config["User"].partition(":")
    assert uid.isdigit() and gid.isdigit() and int(uid) != 0 and int(gid) != 0
    assert config["Entrypoint"] == ["/opt/modelsec/bin/modelsec"]  # exec form: no shell
    assert any(e.startswith("PATH=/opt/modelsec/bin:") for e in config["Env"])
    labels = config["Labels"]
    version = _version(image.commit)
    assert labels["org.opencontainers.image.version"] == version
    assert labels["org.opencontainers.image.revision"] == image.commit
    (descriptor,) = image.index["manifests"]
    assert descriptor["annotations"]["io.containerd.image.name"].endswith(f":{version}")
    assert image.archive.name == f"modelsec-{version}.oci.tar"
    assert json.loads((image.layout / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}


def test_layers_have_fixed_times_and_numeric_owners(image: Image) -> None:
    """What makes two builds of a commit identical: no build time, no builder's names."""
    commit_time = int(subprocess.run(["git", "-C", str(REPO), "log", "-1", "--format=%ct", image.commit],
                                     capture_output=True, text=True, check=True).stdout)
    lock = (REPO / "hack" / "image" / "debian-packages.lock").read_text()
    base_epoch = int(re.search(r"^# epoch: (\d+)", lock, re.M).group(1))  # type: ignore[union-attr]
    expected = [base_epoch, commit_time]
    assert len(image.manifest["layers"]) == 2
    for layer, epoch in zip(image.manifest["layers"], expected):
        with gzip.open(image.blob(layer["digest"])) as stream, tarfile.open(fileobj=stream, mode="r|") as tar:
            for member in tar:
                assert member.mtime <= epoch, (member.name, member.mtime, epoch)
                assert member.uname == "" and member.gname == "", member.name
    created = [h["created"] for h in image.config["history"]]
    assert created[-1].startswith(
        subprocess.run(["date", "-u", "-d", f"@{commit_time}", "+%Y-%m-%dT%H:%M:%S"], capture_output=True,
                       text=True, check=True).stdout.strip())


def test_size_stays_within_the_budget(image: Image) -> None:
    total = 0
    for layer in image.manifest["layers"]:
        with gzip.open(image.blob(layer["digest"])) as stream:
            while chunk := stream.read(1 << 20):
                total += len(chunk)
    assert total / 1e6 < SIZE_BUDGET_MB, f"{total / 1e6:.1f} MB uncompressed"


def test_nothing_to_build_with_no_caches_no_package_lists(image: Image) -> None:
    root = image.rootfs
    for tool in ("gcc", "cc", "c++", "g++", "make", "ld", "as", "apt", "apt-get", "pip", "pip3"):
        for folder in ("usr/bin", "usr/local/bin", "opt/modelsec/bin"):
            assert not (root / folder / tool).exists(), f"{folder}/{tool} is in the image"
    assert not list((root / "var" / "lib" / "apt" / "lists").glob("*")) if (root / "var/lib/apt/lists").exists() else True
    assert not list((root / "var" / "cache" / "apt").glob("*")) if (root / "var/cache/apt").exists() else True
    assert not (root / "root" / ".cache").exists() and not list((root / "tmp").iterdir())
    assert not list((root / "opt" / "modelsec").rglob("pip")), "pip installed into the virtualenv"
    assert not list((root / "usr" / "share" / "doc").rglob("changelog*"))
    # What scanners (Trivy, Grype) read to know the OS packages is kept.
    assert (root / "var" / "lib" / "dpkg" / "status").stat().st_size > 0


def test_version(image: Image) -> None:
    result = image.run("/opt/modelsec/bin/modelsec", "--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"modelsec {_version(image.commit)}"


def test_runs_as_the_image_user_on_a_read_only_root(image: Image) -> None:
    probe = ("import os, pathlib\n"
             "print(os.getuid(), os.getgid(), os.getgroups())\n"
             "try:\n    pathlib.Path('/opt/modelsec/x').write_text('x')\nexcept OSError as exc:\n    print(exc.errno)\n"
             "pathlib.Path('/tmp/ok').write_text('x'); print('tmp ok')\n")
    result = image.run("/opt/modelsec/bin/python", "-c", probe)
    assert result.returncode == 0, result.stderr
    uid, gid = image.user.split(":")
    lines = result.stdout.splitlines()
    assert lines[0] == f"{uid} {gid} []"
    assert lines[1] in ("30", "13")  # EROFS, or EACCES before it: either way no write
    assert lines[2] == "tmp ok"


def test_bundled_malicious_example_is_blocked_and_clean_one_allowed(image: Image) -> None:
    blocked = image.run("/opt/modelsec/bin/modelsec", "scan", "/usr/share/modelsec/examples/malicious")
    assert blocked.returncode == 1, blocked.stdout + blocked.stderr
    assert "BLOCKED" in blocked.stdout and "MS-PKL-" in blocked.stdout and "LoadTimeCodeExecution" in blocked.stdout
    allowed = image.run("/opt/modelsec/bin/modelsec", "scan", "/usr/share/modelsec/examples/clean")
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    assert "ALLOWED" in allowed.stdout


# What the chart runs from this image: the two Deployments, the scan Jobs (operator.scanMode
# job) and the verifyAtStart init containers the mutating webhook adds.
@pytest.mark.parametrize("component", ["operator", "webhook", "scan-worker", "verify"])
def test_the_commands_the_chart_runs_start(image: Image, component: str) -> None:
    result = image.run("/opt/modelsec/bin/modelsec", component, "--help")
    assert result.returncode == 0, result.stderr
    assert f"usage: modelsec {component}" in result.stdout


def test_every_module_imports_and_the_trimmed_libraries_still_work(image: Image) -> None:
    """Every shared library loads (the base must carry what the wheels link against, e.g.
    numpy needs libstdc++), and the build's removals (hack/image/trim-site-packages.sh)
    took nothing modelsec imports, or the S3 client and its credential chain need."""
    probe = """
import ctypes, importlib, pathlib, pkgutil, sys
failed = []
for library in sorted(pathlib.Path("/opt/modelsec/lib").rglob("*.so*")):
    try:
        ctypes.CDLL(str(library))
    except OSError as exc:
        failed.append(f"{library}: {exc}")
import numpy, h5py, numpy.linalg
numpy.linalg.inv(numpy.eye(3))
for name in ("modelsec", "modelsec_operator", "modelsec_webhook"):
    package = importlib.import_module(name)
    for info in pkgutil.walk_packages(package.__path__, name + "."):
        if info.name.endswith("__main__"):
            continue
        try:
            importlib.import_module(info.name)
        except Exception as exc:
            failed.append(f"{info.name}: {exc!r}")
import boto3, botocore.session
session = boto3.session.Session(aws_access_key_id="k", aws_secret_access_key="s", region_name="us-east-1")
for service in ("s3", "sts", "sso", "sso-oidc", "signin"):
    session.client(service)
import kopf, kubernetes.client, huggingface_hub, aiohttp, cryptography
print(len(failed)); print("\\n".join(failed))
"""
    result = image.run("/opt/modelsec/bin/python", "-c", probe)
    assert result.returncode == 0, result.stderr[-4000:]
    assert result.stdout.splitlines()[0] == "0", result.stdout


def test_no_shell_is_needed(image: Image) -> None:
    """The sandbox masks every shell: a command that needs one fails, modelsec does not."""
    shell = image.run("/usr/bin/sh", "-c", "true")
    assert shell.returncode != 0
    assert image.run("/opt/modelsec/bin/modelsec", "rules").returncode == 0
