"""The extractor registry and what every extractor must tolerate."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reference_helpers import pod

from modelsec.references import EXTRACTOR_MODULES, MAX_REFERENCES, extract, extract_object, extractors
from modelsec.references.workloads import POD_TEMPLATE_PATHS, workload_from_object


def test_every_registered_module_exposes_an_extractor() -> None:
    names = [e.name for e in extractors()]
    assert len(names) == len(EXTRACTOR_MODULES) == len(set(names))


@pytest.mark.parametrize("kind", sorted(POD_TEMPLATE_PATHS))
def test_every_controller_kind_reaches_its_pod_template(kind: str) -> None:
    template = {
        "metadata": {"annotations": {"modelsec.io/models": "hf://org/m"}},
        "spec": {"containers": [{"name": "c", "image": "x"}]},
    }
    obj: dict[str, Any] = template if kind == "Pod" else {}
    if kind == "CronJob":
        obj = {"spec": {"jobTemplate": {"spec": {"template": template}}}}
    elif kind != "Pod":
        obj = {"spec": {"template": template}}
    workload = workload_from_object(kind, obj)
    assert workload is not None
    assert [str(r.ref) for r in extract(workload).references] == ["hf://org/m"]


def test_kinds_that_run_nothing() -> None:
    assert workload_from_object("ConfigMap", {"data": {}}) is None
    assert extract_object("Pod", None).malformed == "object is not an object"


def test_references_are_bounded_and_the_rest_is_unjudgeable_not_dropped() -> None:
    models = ",".join(f"hf://org/m{i}" for i in range(MAX_REFERENCES + 10))
    found = extract(
        workload_from_object("Pod", pod({"name": "c"}, annotations={"modelsec.io/models": models}))
    )
    assert len(found.references) == MAX_REFERENCES
    assert found.unresolved and "too many model references" in found.unresolved[-1].why


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=30,
)
container_like = st.fixed_dictionaries(
    {},
    optional={
        "name": json_values,
        "image": st.sampled_from(
            [
                "vllm/vllm-openai",
                "ghcr.io/ggml-org/llama.cpp:server",
                "ghcr.io/huggingface/text-generation-inference",
                "x",
            ]
        )
        | json_values,
        "command": st.lists(
            st.sampled_from(
                [
                    "sh",
                    "-c",
                    "vllm",
                    "serve",
                    "tritonserver",
                    "--model",
                    "$(X)",
                    "'",
                    '"',
                    "&&",
                    "org/m",
                    "-m",
                ]
            )
            | st.text(max_size=15),
            max_size=8,
        )
        | json_values,
        "args": st.lists(st.text(max_size=20), max_size=8) | json_values,
        "env": st.lists(
            st.fixed_dictionaries(
                {"name": st.sampled_from(["MODEL_ID", "LLAMA_ARG_MODEL", "X"])},
                optional={"value": json_values, "valueFrom": json_values},
            ),
            max_size=3,
        )
        | json_values,
    },
)


@settings(max_examples=300, deadline=None)
@given(
    kind=st.sampled_from([*POD_TEMPLATE_PATHS, "InferenceService"]),
    containers=st.lists(container_like, max_size=4),
    junk=json_values,
    annotations=st.dictionaries(
        st.sampled_from(["modelsec.io/models", "internal.serving.kserve.io/storage-initializer-sourceuri"]),
        st.text(max_size=40),
    )
    | json_values,
)
def test_hostile_objects_never_raise(kind: str, containers: list[Any], junk: Any, annotations: Any) -> None:
    obj = {
        "metadata": {"annotations": annotations},
        "spec": {
            "containers": containers,
            "initContainers": junk,
            "template": {"spec": {"containers": containers}},
            "predictor": {"model": junk, "containers": containers},
        },
    }
    extract_object(kind, obj)


def test_extractors_read_containers_only_through_their_views() -> None:
    """The webhook caches extractions keyed by container.FIELDS: every raw read must be
    in container.py, and every key read there must be listed."""
    import re
    from pathlib import Path

    from modelsec.references import container

    folder = Path(container.__file__).parent
    for module in EXTRACTOR_MODULES:
        assert ".raw" not in (folder / f"{module}.py").read_text(), f"{module}.py reads Container.raw"
    read = set(re.findall(r'raw\.get\("([A-Za-z]+)"\)', (folder / "container.py").read_text()))
    read |= {field for field, _ in container.HOOKS}  # read in a loop over HOOKS
    assert read == set(container.FIELDS)


def test_workloads_read_only_declared_pod_spec_fields() -> None:
    """The webhook caches extractions keyed by workloads.POD_FIELDS too (hostAliases was
    read and not keyed: a Pod that aliased the Hub reused an extraction without it)."""
    import re
    from pathlib import Path

    from modelsec.references import workloads

    text = (Path(workloads.__file__)).read_text()
    read = set(re.findall(r'pod_spec\.get\("([A-Za-z]+)"\)', text))
    assert read == set(workloads.POD_FIELDS)


def test_extractors_read_only_declared_annotations() -> None:
    from modelsec.references.model import Workload

    with pytest.raises(KeyError, match="ANNOTATIONS"):
        Workload("Pod").annotation_values("example.com/other")
