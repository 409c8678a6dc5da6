"""modelsec_operator.kube against a real kube-apiserver + etcd (hack/envtest.sh): an object
that is not there is NotFound (or None where the call says so), never an ApiException a
caller must look into."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from modelsec.k8s.config import load_configuration
from modelsec_operator.jobs.api import JobsApi
from modelsec_operator.kube import Kube, NotFound

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(3600)]

MISSING = "modelsec-test-kube-never-created"


async def test_missing_objects_are_not_found(cluster: Any) -> None:
    kube = Kube(load_configuration(Path(cluster.kubeconfig)))
    try:
        with pytest.raises(NotFound, match=f"modelscans/{MISSING} not found"):
            await kube.patch_status("modelscans", MISSING, {"phase": "Pending"})
        assert await kube.get("modelscans", MISSING) is None
        assert await kube.patch_metadata("modelscans", MISSING, labels={"a": "b"}) is None
        assert await kube.read_secret("default", MISSING) is None
        jobs = JobsApi(kube.api_client, "default")
        assert await jobs.get_job(MISSING) is None
        await jobs.delete_job(MISSING)  # nothing to delete is not an error
        assert await jobs.admission_policy(MISSING) == (None, None)
    finally:
        kube.close()
