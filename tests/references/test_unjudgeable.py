"""What cannot be judged from a workload is reported, never dropped (issue 10, items 1, 2,
5 and 6): caps, values from ConfigMaps and Secrets, shell variables, model-looking text
that does not parse. Each case was admitted silently before."""

from __future__ import annotations

import shlex
from typing import Any

from reference_helpers import pod

from modelsec.references import Extraction, Unreadable, extract_object
from modelsec.references.container import ConfigMapData
from modelsec.references.kserve import MAX_STORAGE_URIS
from modelsec.references.shell import MAX_SCRIPT
from modelsec.references.workloads import MAX_CONTAINERS


def extracted(
    obj: dict[str, Any], configmaps: dict[str, ConfigMapData] | None = None, kind: str = "Pod"
) -> Extraction:
    return extract_object(kind, obj, configmaps)


def models(found: Extraction) -> list[str]:
    return [str(r.ref) for r in found.references]


def whys(found: Extraction) -> list[str]:
    return [u.why for u in found.unresolved]


def vllm(*words: str, **container: Any) -> dict[str, Any]:
    return {"name": "s", "image": "python", "command": ["vllm", "serve", *words], **container}


def shell(script: str, *args: str, **container: Any) -> dict[str, Any]:
    return {"name": "s", "image": "python", "command": ["sh", "-c", script, *args], **container}


# --- item 1: caps -------------------------------------------------------------------------------


def test_a_model_in_the_65th_container_is_found() -> None:
    filler = [{"name": f"c{i}", "image": "busybox"} for i in range(64)]
    found = extracted(pod(*filler, vllm("org/late")))
    assert models(found) == ["hf://org/late"] and not found.unresolved


def test_more_containers_than_are_read_is_unjudgeable() -> None:
    filler = [{"name": f"c{i}", "image": "busybox"} for i in range(MAX_CONTAINERS)]
    found = extracted(pod(*filler, vllm("org/beyond")))
    assert "org/beyond" not in str(found.references)
    assert whys(found) == [f"too many containers to judge: the workload has more than {MAX_CONTAINERS}"]


def test_a_shell_script_longer_than_what_is_read_is_unjudgeable() -> None:
    script = "echo " + "x" * MAX_SCRIPT + "; exec vllm serve org/hidden"
    found = extracted(pod(shell(script)))
    assert "org/hidden" not in str(found.references)
    assert "its shell script is" in whys(found)[0] and "cannot judge the rest" in whys(found)[0]


def test_a_model_after_64_kib_of_a_script_that_fits_is_found() -> None:
    script = "echo " + "x" * (MAX_SCRIPT - 100) + "\nvllm serve org/end"
    assert models(extracted(pod(shell(script)))) == ["hf://org/end"]


def test_storage_uris_are_all_read_up_to_a_cap_then_unjudgeable() -> None:
    uris = [{"uri": f"s3://bucket/m{i}"} for i in range(20)]
    isvc = {"spec": {"predictor": {"model": {"storageUris": uris}}}}
    assert "s3://bucket/m19" in models(extracted(isvc, kind="InferenceService"))  # was cut at 16
    many = {"spec": {"predictor": {"model": {"storageUris": [{"uri": "s3://b/x"}] * (MAX_STORAGE_URIS + 1)}}}}
    assert "more than 256 storage URIs" in whys(extracted(many, kind="InferenceService"))[0]


def test_nested_shells_are_read_and_their_depth_is_capped() -> None:
    nested = shell("bash -c \"sh -c 'exec vllm serve org/deep'\"")
    assert models(extracted(pod(nested))) == ["hf://org/deep"]
    script = "vllm serve org/x"
    for _ in range(6):
        script = f"sh -c {shlex.quote(script)}"
    assert "nested more than" in whys(extracted(pod(shell(script))))[0]


def test_clustered_shell_flags_holding_c_anywhere() -> None:
    for flags in ("-c", "-ec", "-ce", "-euxc", "-xce"):
        container = {"name": "s", "command": ["bash", flags, "vllm serve org/m"]}
        assert models(extracted(pod(container))) == ["hf://org/m"], flags


def test_python_interpreters_and_flags_with_values() -> None:
    for argv in (
        ["python3.14", "-m", "vllm.entrypoints.openai.api_server", "--model", "org/m"],
        [
            "python3",
            "-X",
            "dev",
            "-W",
            "ignore",
            "-m",
            "vllm.entrypoints.openai.api_server",
            "--model",
            "org/m",
        ],
        ["python", "-mvllm.entrypoints.openai.api_server", "--model", "org/m"],
    ):
        assert models(extracted(pod({"name": "s", "command": argv}))) == ["hf://org/m"], argv


# --- item 2: ephemeral containers -----------------------------------------------------------------


def test_ephemeral_containers_are_read() -> None:
    obj = pod({"name": "app", "image": "busybox"})
    obj["spec"]["ephemeralContainers"] = [vllm("org/debug", name="debugger")]
    (reference,) = extracted(obj).references
    assert str(reference.ref) == "hf://org/debug" and reference.origins == (
        "container debugger: vllm serve <model>",
    )


# --- item 5: ambiguous and malformed references ------------------------------------------------


def test_model_looking_arguments_that_do_not_parse_are_unjudgeable() -> None:
    for words in (("hf://org",), ("--model", "file://host/models/x"), ("s3://",), ("hf://org/na me",)):
        found = extracted(pod(vllm(*words)))
        assert found.references == () and "looks like a model reference but is not one" in whys(found)[0], (
            words
        )


def test_other_schemes_and_single_names_are_still_not_ours() -> None:
    # A relative path is resolved against workingDir now (test_paths.py).
    for word in ("gs://bucket/m", "pvc://claim/m", "gpt2"):
        assert not extracted(pod(vllm(word))), word


def test_control_characters_in_arguments_are_unjudgeable() -> None:
    found = extracted(pod(vllm("org/m\x1b[2J")))
    assert found.references == () and "control or invisible characters" in whys(found)[0]


def test_equivalent_local_paths_are_one_reference() -> None:
    obj = pod(
        vllm("/models//x"),
        {"name": "t", "command": ["llama-server", "-m", "/models/a/../x"]},
        {"name": "u", "command": ["vllm", "serve", "/models/./x/"]},
    )
    (reference,) = extracted(obj).references
    assert str(reference.ref) == "file:///models/x" and len(reference.origins) == 3


# --- item 6: values the request does not carry --------------------------------------------------

CM_MODEL = {"name": "MODEL", "valueFrom": {"configMapKeyRef": {"name": "models", "key": "id"}}}


def test_a_configmap_value_in_args_is_unresolved_with_the_configmap_named() -> None:
    found = extracted(pod(vllm("$(MODEL)", env=[CM_MODEL])))
    assert found.references == ()
    (unresolved,) = found.unresolved
    assert unresolved.origin == "container s: vllm serve <model>"
    assert "ConfigMap models" in unresolved.why and unresolved.configmaps == ("models",)
    assert found.configmaps == {"models"}


def test_a_configmap_value_read_by_the_caller_is_judged() -> None:
    found = extracted(pod(vllm("$(MODEL)", env=[CM_MODEL])), {"models": {"id": "org/from-cm"}})
    assert models(found) == ["hf://org/from-cm"] and not found.unresolved


def test_envfrom_configmaps_feed_args_and_tgi_environment() -> None:
    container = vllm("$(MODEL)", envFrom=[{"configMapRef": {"name": "models"}}])
    tgi = {
        "name": "tgi",
        "image": "ghcr.io/huggingface/text-generation-inference:3",
        "envFrom": [{"configMapRef": {"name": "models"}, "prefix": ""}],
    }
    assert extracted(pod(container, tgi)).configmaps == {"models"}
    found = extracted(pod(container, tgi), {"models": {"MODEL": "org/a", "MODEL_ID": "org/b"}})
    assert models(found) == ["hf://org/a", "hf://org/b"] and not found.unresolved


def test_secrets_are_never_read_so_values_from_them_stay_unresolved() -> None:
    secret = {"name": "MODEL", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "model"}}}
    found = extracted(pod(vllm("$(MODEL)", env=[secret])))
    assert "Secret creds" in whys(found)[0] and "does not read Secrets" in whys(found)[0]
    assert found.configmaps == frozenset()


def test_a_configmap_that_could_not_be_read_says_why() -> None:
    found = extracted(pod(vllm("$(MODEL)", env=[CM_MODEL])), {"models": Unreadable("403 Forbidden")})
    assert "could not be read (403 Forbidden)" in whys(found)[0] and found.configmaps == frozenset()


def test_a_missing_optional_configmap_leaves_the_variable_unset() -> None:
    optional = {
        "name": "MODEL",
        "valueFrom": {"configMapKeyRef": {"name": "models", "key": "id", "optional": True}},
    }
    assert not extracted(pod(vllm("$(MODEL)", env=[optional])), {"models": None})  # literal $(MODEL)


# --- shell variables --------------------------------------------------------------------------------


def test_positional_parameters_of_sh_c() -> None:
    assert models(extracted(pod(shell('exec vllm serve "$1"', "sh", "org/pos")))) == ["hf://org/pos"]
    assert models(extracted(pod(shell('vllm serve "$@"', "sh", "org/all", "--port", "1")))) == [
        "hf://org/all"
    ]


def test_script_assignments_exports_and_prefixes() -> None:
    assert models(extracted(pod(shell("M=org/a; vllm serve $M")))) == ["hf://org/a"]
    assert models(extracted(pod(shell("export M=org/b && vllm serve ${M}")))) == ["hf://org/b"]
    tgi = shell("MODEL_ID=org/c text-generation-launcher --port 80")
    assert models(extracted(pod(tgi))) == ["hf://org/c"]


def test_variables_whose_value_depends_on_control_flow_are_unresolved() -> None:
    for script in (
        "if x; then M=org/a; else M=org/b; fi; vllm serve $M",
        "for M in org/a org/b; do vllm serve $M; done",
        "read M < /etc/model; vllm serve $M",
    ):
        found = extracted(pod(shell(script)))
        assert found.references == () and found.unresolved, script


def test_what_the_pod_spec_does_not_set_is_unresolved() -> None:
    for script in (
        "vllm serve $MODEL",
        "vllm serve ${MODEL:-org/default}",
        "vllm serve $(cat /model)",
        "vllm serve `cat /model`",
        ". /etc/env; vllm serve $M",
        "M=org/a; source x; vllm serve $M",
        'f() { vllm serve "$1"; }; f org/evil',
        "set -- org/evil; vllm serve $1",
        "vllm serve ${M%/x}",
    ):
        found = extracted(pod(shell(script, env=[{"name": "M", "value": "org/ok"}])))
        assert found.unresolved and "org/evil" not in str(found.references), script


def test_defaults_of_set_variables_are_their_values() -> None:
    container = shell("vllm serve ${MODEL:-org/default}", env=[{"name": "MODEL", "value": "org/set"}])
    assert models(extracted(pod(container))) == ["hf://org/set"]


def test_wrappers_before_the_program() -> None:
    for script in (
        "exec env -i HOME=/x nohup timeout 30 vllm serve org/m",
        "nice -n 5 vllm serve org/m",
        "tini -- vllm serve org/m",
        "gosu app vllm serve org/m",
    ):
        assert models(extracted(pod(shell(script)))) == ["hf://org/m"], script


# --- objects that are not what Kubernetes sends ----------------------------------------------------


def test_malformed_objects_say_where() -> None:
    cases = [
        (
            {"metadata": {"annotations": {"modelsec.io/models": ["hf://org/m"]}}},
            "metadata.annotations['modelsec.io/models'] is not a string",
        ),
        ({"spec": {"containers": ["vllm serve org/m"]}}, "spec.containers[0] is not an object"),
        ({"spec": {"containers": {"name": "x"}}}, "spec.containers is not a list of objects"),
        ({"spec": "x"}, "spec is not an object"),
    ]
    for obj, why in cases:
        assert extracted(obj).malformed == why
    deployment = {"spec": {"template": {"spec": {"initContainers": [{"name": "i", "args": "org/m"}]}}}}
    assert (
        extracted(deployment, kind="Deployment").malformed
        == "spec.template.spec.initContainers[0].args is not a list of strings"
    )
    isvc = {"spec": {"predictor": {"model": {"storageUri": ["s3://b/k"]}}}}
    assert (
        extracted(isvc, kind="InferenceService").malformed
        == "spec.predictor.model.storageUri is not a string"
    )
