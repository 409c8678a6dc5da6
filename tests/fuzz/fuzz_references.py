"""Model-reference extraction (src/modelsec/references): JSON objects of every workload
kind, and free text put where references hide (annotation, args, shell scripts, env)."""

from __future__ import annotations

import json
from collections.abc import Iterator

from harness import Target
from json_mutator import mutate_json

from modelsec.references import extract_object
from modelsec.references.model import NotAReference, to_model_ref
from modelsec.references.workloads import KSERVE_KINDS, POD_TEMPLATE_PATHS
from modelsec.sources import ModelRefError

KINDS = tuple(sorted(POD_TEMPLATE_PATHS)) + tuple(sorted(KSERVE_KINDS))


def run(data: bytes) -> None:
    try:  # lone surrogates (which JSON can also spell as \ud800) stay in the text
        text = data.decode("utf-8", "surrogatepass")
    except UnicodeDecodeError:
        text = data.decode("utf-8", "replace")
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError):
        obj = None
    if isinstance(obj, dict):
        kind = obj.get("kind") if obj.get("kind") in KINDS else KINDS[len(data) % len(KINDS)]
        extract_object(kind, obj)
        return
    env = [
        {"name": "MODEL", "value": text},
        {"name": "M2", "valueFrom": {"configMapKeyRef": {"name": text[:20], "key": "k"}}},
    ]
    words = text.split()
    pod = {
        "metadata": {"annotations": {"modelsec.io/models": text}},
        "spec": {
            "containers": [
                {"name": "sh", "image": "vllm/vllm-openai", "command": ["sh", "-c", text], "env": env},
                {"name": "args", "image": "ghcr.io/huggingface/text-generation-inference", "args": words},
                {
                    "name": "llama",
                    "image": "ghcr.io/ggerganov/llama.cpp:server",
                    "command": ["llama-server"] + words,
                },
            ]
        },
    }
    extract_object("Pod", pod)
    for line in text.splitlines()[:64]:
        try:
            to_model_ref(line)
        except (NotAReference, ModelRefError):
            pass


def _seeds() -> Iterator[bytes]:
    yield b"hf://org/model@0123456789abcdef0123456789abcdef01234567"
    yield b"vllm serve org/model --revision main && python -m x --model /models/a.pkl"
    yield b'MODEL=${MODEL:-org/m}; exec text-generation-launcher --model-id "$MODEL" $(cat f)'
    yield b"s3://bucket/key/model.bin\nfile:///models/x.gguf\nhttps://huggingface.co/org/m/resolve/main/x\n./a/../b"
    yield b"--model-id org/model --revision v1 -m /m/model.gguf --hf-repo org/x --hf-file q.gguf"
    yield json.dumps(
        {
            "kind": "InferenceService",
            "spec": {"predictor": {"model": {"storageUri": "hf://org/model", "args": ["--model_name", "m"]}}},
        }
    ).encode()
    yield json.dumps(
        {
            "kind": "Deployment",
            "spec": {
                "template": {
                    "metadata": {"annotations": {"modelsec.io/models": "org/a, org/b"}},
                    "spec": {
                        "initContainers": [{"name": "i", "image": "x", "args": ["--model", "org/c"]}],
                        "containers": [
                            {
                                "name": "c",
                                "image": "vllm/vllm-openai",
                                "command": ["vllm", "serve", "$(MODEL)"],
                                "envFrom": [{"configMapRef": {"name": "cm"}}],
                            }
                        ],
                    },
                }
            },
        }
    ).encode()
    yield json.dumps(
        {
            "kind": "CronJob",
            "spec": {
                "jobTemplate": {
                    "spec": {
                        "template": {
                            "spec": {
                                "containers": [
                                    {
                                        "name": "c",
                                        "image": "tritonserver",
                                        "args": ["--model-repository=s3://b/m"],
                                    }
                                ]
                            }
                        }
                    }
                }
            },
        }
    ).encode()


TARGET = Target(
    name="references",
    run=run,
    seeds=_seeds,
    mutator=mutate_json,
    max_len=8 << 10,
    tokens=(
        b"hf://",
        b"s3://",
        b"file://",
        b"https://huggingface.co/",
        b"--model",
        b"--model-id",
        b"--revision",
        b"serve",
        b"sh -c",
        b"$(",
        b"${",
        b":-",
        b"`",
        b"&&",
        b";",
        b"|",
        b"\\\n",
        b"'",
        b'"',
        b"@",
        b'"containers"',
        b'"args"',
        b'"command"',
        b'"env"',
        b'"storageUri"',
        b"modelsec.io/models",
    ),
)
