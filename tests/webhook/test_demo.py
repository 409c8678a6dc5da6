"""hack/demo.sh, the README's main job, runs end to end on its own control-plane instance
and shows what it promises: a rejected and an admitted Deployment, and the ModelScans."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(1800)]

REPO = Path(__file__).resolve().parents[2]
INSTANCE = "pytest-demo"


def test_demo_rejects_the_malicious_deployment_and_admits_the_clean_one() -> None:
    cached = all((REPO / ".cache" / "bin" / n).exists() for n in ("etcd", "kube-apiserver", "kubectl"))
    if shutil.which("go") is None and not cached:
        pytest.skip("no Go toolchain and no cached control-plane binaries")
    env = {**os.environ, "ENVTEST_NAME": INSTANCE}
    try:
        run = subprocess.run(
            ["bash", str(REPO / "hack" / "demo.sh")], env=env, capture_output=True, text=True, timeout=1700
        )
        out = run.stdout + run.stderr
        assert run.returncode == 0, out[-5000:]
        assert re.search(
            r"examples/malicious \(container vllm: vllm serve <model>\) is BLOCKED by "
            r"SecurityGroup demo-strict: LoadTimeCodeExecution failed; MS-PKL-100",
            out,
        ), out[-5000:]
        assert re.search(r"Warning: modelsec: \S+examples/clean \(demo-strict\): ApprovedFormats", out)
        assert "deployment.apps/llm-clean created" in out
        assert (
            "llm-malicious" not in out.split("kubectl get deployments")[-1].split("kubectl get modelsec")[0]
        )
        assert out.count("Completed   BLOCKED") == 1 and out.count("Completed   ALLOWED") == 2
        assert f"ENVTEST_NAME={INSTANCE} hack/dev-down.sh" in out
    finally:
        subprocess.run(
            ["bash", str(REPO / "hack" / "dev-down.sh"), "--purge"],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
