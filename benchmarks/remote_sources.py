"""Remote sources: scan a multi-gigabyte model over HTTP range reads vs downloading it whole.

The model (default 5.25 GiB): four safetensors shards of 1 GiB (256 tensors each) plus a
PyTorch-style zip of 1.25 GiB (80 storages), with a config and a shard index. Tensor data
are holes in sparse files, so the model costs no RAM and almost no disk; the headers, the
zip directory and the pickle are real bytes.

It is served by each test server on loopback and scanned through the real clients:

* the Hugging Face test Hub (``tests/sources/hf_server.py``) through huggingface_hub;
* moto's S3 server (``moto.server.ThreadedMotoServer``) through boto3. moto keeps object
  bodies in memory and reads the whole body for every ranged GET; for this benchmark its
  objects are backed by a read-only memory map of the sparse files (the S3 protocol, the
  server's range handling and the client are unchanged).

For each: the scan's bytes transferred and wall time, against downloading every file whole
(huggingface_hub's session streaming each file and hashing it; boto3's ``download_fileobj``,
which uses parallel ranged GETs) and its bytes and wall time.

    .venv/bin/python benchmarks/remote_sources.py [--gib-per-shard 1] [--output docs/benchmarks-remote.md]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import mmap
import os
import platform
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "sources"))
sys.path.insert(0, str(ROOT / "src"))

from hf_server import HubFile, HubServer  # noqa: E402
from model_fixtures import write_sparse_safetensors, write_sparse_torch_zip  # noqa: E402

from modelsec.engine import Engine  # noqa: E402
from modelsec.sources import ScanOptions, parse_model_uri, scan_model  # noqa: E402

MIB = 1 << 20
GIB = 1 << 30


@dataclass
class Result:
    server: str
    total_bytes: int
    scan_bytes: int
    scan_seconds: float
    scan_requests: int
    download_bytes: int
    download_seconds: float
    incompletes: list[str]
    formats: list[str]

    @property
    def fraction(self) -> float:
        return self.scan_bytes / self.total_bytes


def build_model(
    folder: Path, gib_per_shard: float, shards: int, storages: int, storage_mib: int
) -> dict[str, Path]:
    files: dict[str, Path] = {}
    tensors_per_shard = max(1, int(gib_per_shard * 256))
    weight_map = {}
    for s in range(shards):
        name = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
        tensors = {}
        for t in range(tensors_per_shard):
            key = f"model.layers.{s * tensors_per_shard + t}.mlp.up_proj.weight"
            tensors[key] = (1024, 1024)  # 4 MiB of float32 each
            weight_map[key] = name
        write_sparse_safetensors(str(folder / name), tensors)
        files[name] = folder / name
    zip_name = "pytorch_model.bin"
    write_sparse_torch_zip(str(folder / zip_name), [storage_mib * MIB] * storages)
    files[zip_name] = folder / zip_name
    (folder / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": 0}, "weight_map": weight_map})
    )
    files["model.safetensors.index.json"] = folder / "model.safetensors.index.json"
    (folder / "config.json").write_text(
        json.dumps({"architectures": ["LlamaForCausalLM"], "model_type": "llama"})
    )
    files["config.json"] = folder / "config.json"
    return files


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(8 * MIB):
            h.update(chunk)
    return h.hexdigest()


def md5_of(path: Path) -> str:
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while chunk := f.read(8 * MIB):
            h.update(chunk)
    return h.hexdigest()


def summarize(scanned) -> tuple[list[str], list[str]]:  # type: ignore[no-untyped-def]
    incompletes = [f"{i.code} {i.file}: {i.reason}" for i in scanned.report.all_incompletes()]
    formats = sorted({f"{f.path.rsplit('/', 1)[-1]}={f.format}" for f in scanned.report.files})
    return incompletes, formats


def bench_hf(files: dict[str, Path], digests: dict[str, str]) -> Result:
    from huggingface_hub import hf_hub_url
    from huggingface_hub.utils import get_session

    total = sum(p.stat().st_size for p in files.values())
    with HubServer() as hub:
        hub.orgs["bench"] = True
        hub.add_repo(
            "bench/big-model",
            {
                name: HubFile(
                    name,
                    disk_path=str(path),
                    sha256=digests[name],
                    lfs=name.endswith((".safetensors", ".bin")),
                )
                if name.endswith((".safetensors", ".bin"))
                else path.read_bytes()
                for name, path in files.items()
            },
            card_data={"license": "apache-2.0"},
        )
        started = time.perf_counter()
        scanned = scan_model(
            parse_model_uri("hf://bench/big-model"), Engine(), ScanOptions(config={"endpoint": hub.url})
        )
        scan_seconds = time.perf_counter() - started
        scan_bytes = scanned.report.bytes_transferred or 0
        requests = sum(1 for r in hub.requests if r.range and r.status in (200, 206))
        assert hub.bytes_sent() - sum(r.bytes_sent for r in hub.requests if "/api/" in r.path) == scan_bytes
        incompletes, formats = summarize(scanned)

        # Baseline: every file downloaded whole through the same client session, verified.
        sha = hub.repos["bench/big-model"].refs["main"]
        started = time.perf_counter()
        downloaded = 0
        for name in files:
            h = hashlib.sha256()
            with get_session().stream(
                "GET", hf_hub_url("bench/big-model", name, revision=sha, endpoint=hub.url)
            ) as r:
                r.raise_for_status()
                for chunk in r.iter_bytes(8 * MIB):
                    h.update(chunk)
                    downloaded += len(chunk)
            assert h.hexdigest() == digests[name], name
        download_seconds = time.perf_counter() - started
    return Result(
        "Hugging Face test Hub (huggingface_hub)",
        total,
        scan_bytes,
        scan_seconds,
        requests,
        downloaded,
        download_seconds,
        incompletes,
        formats,
    )


def bench_s3(files: dict[str, Path]) -> Result:
    import boto3
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3 import models as s3_models
    from moto.server import ThreadedMotoServer

    # moto reads a whole object body for each GET; back benchmark objects by a memory map.
    original = s3_models.FakeKey.value

    def value(self):  # type: ignore[no-untyped-def]
        mapped = getattr(self, "_benchmark_map", None)
        return mapped if mapped is not None else original.fget(self)

    s3_models.FakeKey.value = property(value, original.fset)  # type: ignore[assignment]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    creds = {"aws_access_key_id": "AKIABENCHMARK000", "aws_secret_access_key": "benchmark-secret-0000"}
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", **creds)
    maps: list[mmap.mmap] = []
    handles = []
    try:
        client.create_bucket(Bucket="models")
        backend = s3_models.s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
        for name, path in files.items():
            if path.stat().st_size < 64 * MIB:
                # Small files are stored as moto stores anything (a full GET of a mapped body
                # would hand the map to the WSGI server, which closes it).
                client.put_object(Bucket="models", Key=f"big-model/{name}", Body=path.read_bytes())
                continue
            key = backend.put_object("models", f"big-model/{name}", b"")
            handle = open(path, "rb")
            handles.append(handle)
            mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
            maps.append(mapped)
            key._benchmark_map = mapped
            key.contentsize = len(mapped)
            key._etag = md5_of(path)
        total = sum(p.stat().st_size for p in files.values())
        config = {
            "endpoint": endpoint,
            "accessKeyId": creds["aws_access_key_id"],
            "secretAccessKey": creds["aws_secret_access_key"],
        }
        scan_requests = [0]

        def count(**_: object) -> None:
            scan_requests[0] += 1

        client_events = []  # the scan's own boto3 client: count its ranged GetObject calls
        import modelsec.sources.s3 as s3_source

        original_client = s3_source.Bucket._client

        def counting_client(self):  # type: ignore[no-untyped-def]
            made = original_client(self)
            made.meta.events.register("before-send.s3.GetObject", count)
            client_events.append(made)
            return made

        s3_source.Bucket._client = counting_client  # type: ignore[method-assign]
        started = time.perf_counter()
        try:
            scanned = scan_model(
                parse_model_uri("s3://models/big-model/"), Engine(), ScanOptions(config=config)
            )
        finally:
            s3_source.Bucket._client = original_client  # type: ignore[method-assign]
        scan_seconds = time.perf_counter() - started
        incompletes, formats = summarize(scanned)

        class Sink:
            written = 0

            def write(self, data: bytes) -> int:
                Sink.written += len(data)
                return len(data)

        started = time.perf_counter()
        for name in files:
            client.download_fileobj("models", f"big-model/{name}", Sink())
        download_seconds = time.perf_counter() - started
        requests = scan_requests[0]
        return Result(
            "moto S3 server (boto3)",
            total,
            scanned.report.bytes_transferred or 0,
            scan_seconds,
            requests,
            Sink.written,
            download_seconds,
            incompletes,
            formats,
        )
    finally:
        server.stop()
        s3_models.FakeKey.value = original  # type: ignore[assignment]
        for mapped in maps:
            mapped.close()
        for handle in handles:
            handle.close()


def render(results: list[Result], args: argparse.Namespace, build_seconds: float) -> str:
    lines = [
        "# Benchmark: remote sources (range reads vs whole download)",
        "",
        "Command:",
        "",
        "```",
        f".venv/bin/python benchmarks/remote_sources.py --gib-per-shard {args.gib_per_shard:g} "
        f"--shards {args.shards} --storages {args.storages} --storage-mib {args.storage_mib}",
        "```",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPU(s) shared with other jobs, Python "
        f"{platform.python_version()}; servers and client on loopback (no network latency: on a real "
        "network the whole download is far slower, the scan's request count matters more).",
        f"Model: {args.shards} safetensors shards of {args.gib_per_shard:g} GiB + a PyTorch zip of "
        f"{args.storages} x {args.storage_mib} MiB storages + config + index; sparse files built in "
        f"{build_seconds:.1f} s.",
        "",
        "| server | model bytes | scan: bytes transferred | fraction | range requests | scan wall time | download whole: bytes | download wall time |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        lines.append(
            f"| {r.server} | {r.total_bytes:,} ({r.total_bytes / GIB:.2f} GiB) | {r.scan_bytes:,} "
            f"({r.scan_bytes / MIB:.1f} MiB) | {r.fraction:.4%} | {r.scan_requests} | {r.scan_seconds:.2f} s | "
            f"{r.download_bytes:,} | {r.download_seconds:.1f} s |"
        )
    lines.append("")
    for r in results:
        lines.append(
            f"{r.server}: formats {', '.join(r.formats)}; "
            f"{len(r.incompletes)} incomplete(s){': ' + '; '.join(r.incompletes[:3]) if r.incompletes else ''}"
        )
        lines.append("")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--gib-per-shard", type=float, default=1.0)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--storages", type=int, default=80)
    parser.add_argument("--storage-mib", type=int, default=16)
    parser.add_argument("--output", help="write the markdown report here too")
    parser.add_argument("--only", choices=["hf", "s3"])
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="modelsec-bench-remote-"))
    try:
        started = time.perf_counter()
        files = build_model(folder, args.gib_per_shard, args.shards, args.storages, args.storage_mib)
        digests = {name: sha256_of(path) for name, path in files.items()}
        build_seconds = time.perf_counter() - started
        total = sum(p.stat().st_size for p in files.values())
        used = sum(p.stat().st_blocks * 512 for p in files.values())
        print(f"model: {total / GIB:.2f} GiB apparent, {used / MIB:.1f} MiB on disk", file=sys.stderr)
        results = []
        if args.only in (None, "hf"):
            results.append(bench_hf(files, digests))
        if args.only in (None, "s3"):
            results.append(bench_s3(files))
        text = render(results, args, build_seconds)
        print(text)
        if args.output:
            Path(args.output).write_text(text)
        bad = [r for r in results if r.fraction >= 0.01]
        return 1 if bad else 0
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
