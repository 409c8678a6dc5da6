"""modelsec.io/models: explicit references, on the workload or its pod template."""

from __future__ import annotations

from reference_helpers import deployment, extraction, pod, refs

SHA = "0123456789abcdef0123456789abcdef01234567"


def test_comma_separated_uris_with_revisions() -> None:
    obj = pod(
        {"name": "c", "image": "busybox"},
        annotations={
            "modelsec.io/models": f"hf://org/a@{SHA}, s3://bucket/k@v1,file:///m/x.pt  hf://org/b /m/y.pt"
        },
    )
    assert refs("Pod", obj) == [
        "file:///m/x.pt",
        "file:///m/y.pt",
        f"hf://org/a@{SHA}",
        "hf://org/b",
        "s3://bucket/k@v1",
    ]


def test_workload_and_template_annotations_both_count() -> None:
    obj = deployment(
        {"name": "c", "image": "x"},
        annotations={"modelsec.io/models": "hf://org/a"},
        template_annotations={"modelsec.io/models": "hf://org/b"},
    )
    assert refs("Deployment", obj) == ["hf://org/a", "hf://org/b"]


def test_unparsable_entries_are_invalid_not_ignored() -> None:
    obj = pod(
        {"name": "c"}, annotations={"modelsec.io/models": "hf://org, gs://b/x, relative/dir/x, hf://ok/model"}
    )
    found = extraction("Pod", obj)
    assert [str(r.ref) for r in found.references] == ["hf://ok/model"]
    assert sorted(i.text for i in found.invalid) == ["gs://b/x", "hf://org", "relative/dir/x"]
    assert all(i.origin == "annotation modelsec.io/models" for i in found.invalid)


def test_a_bare_id_is_ambiguous_and_denied_not_read_as_a_hub_id() -> None:
    # models/x.pkl was read as the Hub id hf://models/x.pkl: a relative path, admitted
    # wherever no Hugging Face group existed.
    found = extraction(
        "Pod", pod({"name": "c"}, annotations={"modelsec.io/models": "models/x.pkl, org/name"})
    )
    assert found.references == ()
    assert [i.text for i in found.invalid] == ["models/x.pkl", "org/name"]
    assert all("ambiguous" in i.problem and "hf://org/name" in i.problem for i in found.invalid)


def test_entries_a_modelscan_cannot_hold_are_invalid() -> None:
    for bad in ("file:///m/x\x00.pkl", "hf://org/m\x1b[2J", "s3://b/" + "k" * 3000):
        found = extraction("Pod", pod({"name": "c"}, annotations={"modelsec.io/models": bad}))
        assert found.references == () and len(found.invalid) == 1, bad


def test_equivalent_spellings_are_one_reference() -> None:
    spellings = "file:///models//x, file:///models/./x, file:///models/a/../x, /models/x/"
    (only,) = extraction("Pod", pod({"name": "c"}, annotations={"modelsec.io/models": spellings})).references
    assert str(only.ref) == "file:///models/x"
    hub = extraction(
        "Pod", pod({"name": "c"}, annotations={"modelsec.io/models": "hf://Org/Name, hf://org/name"})
    )
    assert len(hub.references) == 1  # the Hub resolves repository ids case-insensitively


def test_same_model_named_twice_is_one_reference_with_both_origins() -> None:
    obj = pod(
        {"name": "vllm", "image": "vllm/vllm-openai", "args": ["org/m"]},
        annotations={"modelsec.io/models": "hf://org/m"},
    )
    (only,) = extraction("Pod", obj).references
    assert only.origins == ("annotation modelsec.io/models", "container vllm: vllm serve <model>")


def test_no_annotation_no_models() -> None:
    assert not extraction("Pod", pod({"name": "c", "image": "nginx"}))


def test_an_oversized_annotation_is_refused_not_partly_read() -> None:
    models = ",".join(f"hf://org/m{i}" for i in range(300))
    found = extraction("Pod", pod({"name": "c"}, annotations={"modelsec.io/models": models}))
    assert found.references == () and "more than 256 entries" in found.invalid[0].problem
