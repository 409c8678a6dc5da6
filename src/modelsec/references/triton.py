"""NVIDIA Triton Inference Server: ``tritonserver --model-repository=<path or URI>``.

A model repository is a directory of models, so the reference is the whole prefix.
``--model-store`` is the older spelling; both may repeat. Triton names S3-compatible
endpoints inside the URI (``s3://host:port/bucket/path``, ``s3://https://host:port/bucket/path``):
the endpoint is split off and kept with the reference, so that only a ModelSource for that
endpoint matches it. Local paths become ``file://`` references; ``gs://`` and ``as://``
repositories are not modelsec sources and are left alone.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from modelsec.references.argv import describe, image_matches, values
from modelsec.references.container import Container, Env
from modelsec.references.model import Found, Workload
from modelsec.references.pins import Unpinnable
from modelsec.references.redirects import Downloader

FLAGS = ("--model-repository", "--model-store")
REPOSITORY = Unpinnable("Triton reads a model repository (a directory of models) and takes no revision")
_S3_ENDPOINT = re.compile(r"^s3://(?:(https?)://)?([^/]+:\d+)/(.+)$", re.IGNORECASE)


def split_endpoint(uri: str) -> tuple[str, str | None]:
    """(``s3://bucket/path``, endpoint URL or None)."""
    match = _S3_ENDPOINT.match(uri)
    if match is None:
        return uri, None
    scheme, hostport, rest = match.groups()
    return f"s3://{rest}", f"{(scheme or 'http').lower()}://{hostport.lower()}"


def _server_args(container: Container) -> list[tuple[tuple[str, ...], Env]]:
    found = [(rest, env) for prog, rest, env in container.launches() if prog == "tritonserver"]
    if container.entrypoint and container.commands and image_matches(container, "tritonserver"):
        found.append((container.commands[0], container.environment))
    return found


class TritonExtractor:
    name = "triton"

    def extract(self, workload: Workload) -> Iterator[Found]:
        for container in workload.containers:
            for args, env in _server_args(container):
                for flag, value in values(args, *FLAGS):
                    uri, endpoint = split_endpoint(value.strip())
                    yield Found(
                        uri,
                        describe(container, f"tritonserver {flag}"),
                        endpoint=endpoint,
                        site=REPOSITORY,
                        downloaders=(Downloader("triton", env),),
                        env=env,
                        takes_path=True,
                    )


EXTRACTOR = TritonExtractor()
