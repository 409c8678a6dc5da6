# syntax=docker/dockerfile:1
# modelsec for users who build with Docker (or Buildah, Kaniko). The project itself builds
# its image without a daemon: hack/build-image.sh (mmdebstrap + umoci) writes
# dist/modelsec-<version>.oci.tar; see docs/install.md. Both install the same pinned
# wheels (hack/image/requirements.lock, with hashes), drop the same unused distributions
# (hack/image/unused-distributions.txt) and trim the same unused parts. The script's image is
# smaller still: its Debian base keeps only what python3 needs to run, shared libraries are
# stripped and third-party packages ship bytecode only (docs/install.md, "The image").
#
#   docker build -t registry.example.com/modelsec:0.1.0 .
#
# The base is pinned by digest (python:3.13-slim-trixie). That digest was taken from public
# use and could not be checked from the machine this was written on (no registry access):
# refresh it with `docker buildx imagetools inspect python:3.13-slim-trixie`.
ARG PYTHON_IMAGE=python:3.13-slim-trixie@sha256:9d2e5553305c7c7b0097999bb17187c69b921ccd6bc9d40e4bb5ebe652c00285

FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
COPY hack/image/requirements.lock hack/image/unused-distributions.txt hack/image/trim-site-packages.sh /src/hack/image/
COPY pyproject.toml README.md /src/
COPY src /src/src
COPY operator /src/operator
COPY webhook /src/webhook
# Wheels only (no compiler in either stage), each checked against its hash; then modelsec
# itself, without dependencies (the lock has them all).
RUN python -m venv /opt/modelsec \
    && /opt/modelsec/bin/pip install --no-cache-dir --only-binary=:all: --require-hashes \
        -r /src/hack/image/requirements.lock \
    && /opt/modelsec/bin/pip install --no-cache-dir --no-deps /src \
    && /opt/modelsec/bin/pip check \
    && /opt/modelsec/bin/pip uninstall --yes -r /src/hack/image/unused-distributions.txt \
    && /opt/modelsec/bin/pip uninstall --yes pip \
    && sh /src/hack/image/trim-site-packages.sh /opt/modelsec/lib/python3.13/site-packages \
    && /opt/modelsec/bin/python -m compileall -q --invalidation-mode unchecked-hash /opt/modelsec/lib

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="modelsec" \
      org.opencontainers.image.description="Kubernetes-native AI model security: scanner, operator and admission webhook" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --gid 65532 modelsec \
    && useradd --uid 65532 --gid 65532 --home-dir /home/modelsec --create-home --shell /usr/sbin/nologin modelsec
COPY --from=build /opt/modelsec /opt/modelsec
COPY examples /usr/share/modelsec/examples
ENV PATH=/opt/modelsec/bin:$PATH \
    HOME=/home/modelsec \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
WORKDIR /home/modelsec
# Numeric, so that Kubernetes' runAsNonRoot can check it without reading /etc/passwd.
USER 65532:65532
# Exec form: no shell between the container runtime and modelsec.
ENTRYPOINT ["/opt/modelsec/bin/modelsec"]
CMD ["--help"]
