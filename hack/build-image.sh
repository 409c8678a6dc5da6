#!/usr/bin/env bash
# Build the modelsec container image without a container daemon: a minimal Debian root
# filesystem from mmdebstrap, modelsec (with its cluster, remote and integrity extras) installed into
# a virtualenv from a wheel of one commit of this checkout (HEAD, or MODELSEC_IMAGE_COMMIT),
# packed as an OCI image with umoci.
#
#   hack/build-image.sh              build dist/modelsec-<version>.oci.tar (cached)
#   hack/build-image.sh --relock     re-resolve the Debian packages and Python wheels,
#                                    rewrite hack/image/*.lock, then build
#   hack/build-image.sh --print-path print the archive path this checkout builds, build nothing
#
# The archive loads with `kind load image-archive`, `skopeo copy oci-archive:<file> ...` or
# `podman load -i <file>`; it is named $MODELSEC_IMAGE_NAME:<version>.
#
# Layers: (1) the Debian base: python3, ca-certificates and libstdc++6 at the versions pinned in
# hack/image/debian-packages.lock, with documentation, man pages, locales, apt lists and
# caches left out, the packages only their installation needed (shells, coreutils, perl,
# dpkg: hack/image/prune-base.py) removed, and the user modelsec (65532:65532);
# (2) /opt/modelsec (the virtualenv: the wheels pinned with hashes in
# hack/image/requirements.lock, the modelsec wheel, bytecode compiled ahead, shared
# libraries stripped of symbol tables) and /usr/share/modelsec/examples. The entrypoint is
# /opt/modelsec/bin/modelsec (exec form: no shell at run time); the user is numeric.
# docs/install.md ("The image") has the size breakdown and what each cut costs.
#
# Reproducible: the base layer's timestamps are the epoch recorded in the Debian lock, the
# application layer's are the commit's time; tar entries are sorted with numeric owners;
# the image config and history carry the same times. Two builds of one commit with the
# same locks give the same manifest digest.
#
# Cache (under $MODELSEC_CACHE_DIR, default .cache/image): the base layer keyed by the
# Debian lock, the downloaded wheels, and the finished archive keyed by every input.
# Needs root (chroot, file ownership), mmdebstrap, umoci and binutils' strip (apt-get install
# mmdebstrap umoci binutils), GNU tar, network access to the Debian mirror and PyPI on a cold
# cache. The stripped libraries are the host strip's output: builds with the same binutils
# version give the same bytes (its version is part of the cache key).
#
# Environment: MODELSEC_IMAGE_COMMIT (default HEAD), MODELSEC_DEBIAN_MIRROR (default
# http://deb.debian.org), MODELSEC_IMAGE_NAME (default docker.io/modelsec/modelsec),
# MODELSEC_CACHE_DIR.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"

SUITE=trixie
PYTHON_VERSION=3.13          # the suite's python3; the wheels are resolved for it
APP_UID=65532
APP_GID=65532
# The Debian packages asked for; everything else in the lock is what they (and the
# Essential set) pull in.
DEBIAN_PACKAGES=(python3 ca-certificates libstdc++6)   # numpy's C++ parts need libstdc++
# What the running image keeps of the base: those packages and what they depend on, plus
# base-files (/etc/os-release, which scanners read to know the distribution). The packages
# below are needed to configure them (maintainer scripts, the CA bundle's generation), not
# to run them; the dependency walk stops there (hack/image/prune-base.py).
RUNTIME_PACKAGES=("${DEBIAN_PACKAGES[@]}" base-files)
BUILD_ONLY_PACKAGES=(dpkg debconf perl-base openssl)
# Wheel platforms the suite's glibc (2.41) runs.
PLATFORMS=(manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux_2_28_x86_64 manylinux_2_34_x86_64)
# Every extra a cluster component can need: the operator evaluates SignatureVerified
# (integrity) as readily as any other rule the SecurityGroup CRD accepts.
EXTRAS=cluster,remote,integrity
# modelsec's own packages keep their sources (tracebacks show the lines); the third-party
# ones ship bytecode only (50 MB less; the sources are the pinned wheels, by hash).
OWN_PACKAGES=(modelsec modelsec_operator modelsec_webhook)
PIP_VERSION=25.3             # runs the installation from its wheel; not installed into the image
# Bump when a change here must invalidate cached layers and archives.
RECIPE=5

MIRROR=${MODELSEC_DEBIAN_MIRROR:-http://deb.debian.org}
IMAGE_NAME=${MODELSEC_IMAGE_NAME:-docker.io/modelsec/modelsec}
CACHE=${MODELSEC_CACHE_DIR:-$REPO/.cache}/image
LOCK_DIR=$REPO/hack/image
DEB_LOCK=$LOCK_DIR/debian-packages.lock
PY_LOCK=$LOCK_DIR/requirements.lock
# Distributions the lock pulls in that no code path of modelsec imports (the file says why).
UNUSED=$LOCK_DIR/unused-distributions.txt
HOST_PY=${PYTHON:-$REPO/.venv/bin/python}

log() { printf 'build-image: %s\n' "$*" >&2; }
die() { printf 'build-image: error: %s\n' "$*" >&2; exit 1; }
sha() { sha256sum | cut -c1-64; }

COMMIT=$(git -C "$REPO" rev-parse --verify -q "${MODELSEC_IMAGE_COMMIT:-HEAD}^{commit}" || true)
version() { git -C "$REPO" show "$COMMIT:src/modelsec/__init__.py" | sed -n 's/^__version__ = "\(.*\)"/\1/p'; }

mode=build
case "${1:-}" in
  "") ;;
  --relock) mode=relock ;;
  --print-path) echo "$REPO/dist/modelsec-$(version).oci.tar"; exit 0 ;;
  -h|--help) sed -n '2,39p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) die "unknown argument '$1' (see --help)" ;;
esac

[ "$(id -u)" -eq 0 ] || die "needs root: the root filesystem is assembled with chroot and owned by several users (run it as root, or in CI as the root user)"
for tool in mmdebstrap umoci tar git strip; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool not found (apt-get install mmdebstrap umoci binutils)"
done
[ -x "$HOST_PY" ] || die "no $HOST_PY; run hack/bootstrap.sh first"
[ -n "$COMMIT" ] || die "no commit ${MODELSEC_IMAGE_COMMIT:-HEAD} in $REPO: the image is built from a commit"

VERSION=$(version)
[ -n "$VERSION" ] || die "cannot read __version__ from src/modelsec/__init__.py at $COMMIT"
REVISION=$COMMIT
APP_EPOCH=$(git -C "$REPO" log -1 --format=%ct "$COMMIT")
OUT=$REPO/dist/modelsec-$VERSION.oci.tar
mkdir -p "$CACHE/wheels" "$REPO/dist"
# One build at a time per cache: concurrent ones would write the same cached files.
exec {lock_fd}>"$CACHE/.build.lock"
flock -w 3600 "$lock_fd" || die "another build held $CACHE/.build.lock for an hour"
WORK=$(mktemp -d "$CACHE/work.XXXXXX")
cleanup() { rm -rf "$WORK"; }
trap cleanup EXIT
started=$(date +%s)

# --- the Debian base ------------------------------------------------------------------

# A deterministic tar of DIR's PATHS: sorted names, numeric owners, one mtime, no atime/ctime.
det_tar() {
  local dir=$1 out=$2 epoch=$3; shift 3
  tar --create --file "$out" --directory "$dir" --sort=name --format=posix \
    --pax-option='exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime' \
    --mtime="@$epoch" --clamp-mtime --numeric-owner --no-acls --no-xattrs --no-selinux "$@"
}

# apt preferences that pin every package of the lock to its version.
write_pins() {
  awk '!/^#/ && NF == 2 { printf "Package: %s\nPin: version %s\nPin-Priority: 1001\n\n", $1, $2 }' "$DEB_LOCK"
}

mmdebstrap_base() {  # DIR [PINFILE]
  local dir=$1 pins=${2:-} hooks=()
  if [ -n "$pins" ]; then
    hooks+=(--setup-hook="mkdir -p \"\$1/etc/apt/preferences.d\" && cp '$pins' \"\$1/etc/apt/preferences.d/modelsec-lock\"")
  fi
  # Nothing a running scanner needs: documentation, man pages, translations, glibc's iconv
  # modules (Python decodes text itself).
  SOURCE_DATE_EPOCH=$BASE_EPOCH mmdebstrap --mode=root --format=directory --variant=essential \
    --include="$(IFS=,; echo "${DEBIAN_PACKAGES[*]}")" \
    --aptopt='Acquire::Languages "none"' \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/lintian/*' \
    --dpkgopt='path-exclude=/usr/lib/x86_64-linux-gnu/gconv/*' \
    "${hooks[@]}" \
    --customize-hook='rm -f "$1/etc/apt/preferences.d/modelsec-lock"' \
    --customize-hook='chroot "$1" dpkg-query -W -f "\${Package} \${Version}\n" > "$1/.packages"' \
    "$SUITE" "$dir" \
    "deb $MIRROR/debian $SUITE main" \
    "deb $MIRROR/debian $SUITE-updates main" \
    "deb $MIRROR/debian-security $SUITE-security main" >&2
}

# Make the mmdebstrap output an image base: the app user, no host files, no caches.
harden_base() {
  local root=$1
  sort "$root/.packages" > "$WORK/installed"; rm -f "$root/.packages"
  # Host files mmdebstrap copies for debootstrap compatibility (see its SOURCE_DATE_EPOCH notes).
  rm -f "$root/etc/resolv.conf" "$root/etc/hostname" "$root/etc/machine-id"
  : > "$root/etc/machine-id"
  # dpkg's path-exclude misses documentation some packages ship under another name.
  find "$root/usr/share/doc" ! -type d ! -name copyright -delete
  find "$root/usr/share/doc" -depth -type d -empty -delete
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* "$root"/var/cache/debconf/*-old \
         "$root"/var/log/* "$root"/tmp/* "$root"/var/tmp/* "$root"/etc/apt/apt.conf.d/99mmdebstrap
  find "$root/dev" -mindepth 1 -delete  # the runtime provides /dev
  printf 'modelsec:x:%s:%s:modelsec:/home/modelsec:/usr/sbin/nologin\n' "$APP_UID" "$APP_GID" >> "$root/etc/passwd"
  printf 'modelsec:x:%s:\n' "$APP_GID" >> "$root/etc/group"
  if [ -f "$root/etc/shadow" ]; then printf 'modelsec:!:1::::::\n' >> "$root/etc/shadow"; fi
  install -d -m 0750 -o "$APP_UID" -g "$APP_GID" "$root/home/modelsec"
  chmod 1777 "$root/tmp"
}

relock_debian() {
  log "resolving the Debian $SUITE packages (no pins)"
  BASE_EPOCH=$(date +%s)
  local root=$WORK/relock-root
  mmdebstrap_base "$root"
  harden_base "$root"
  {
    echo "# Debian $SUITE packages of the image's base layer: \`package version\`, one a line."
    echo "# Written by hack/build-image.sh --relock; the build installs exactly these or fails."
    echo "# epoch: $BASE_EPOCH (the base layer's file times)"
    cat "$WORK/installed"
  } > "$DEB_LOCK"
  rm -rf "$root"
  log "wrote $DEB_LOCK ($(grep -vc '^#' "$DEB_LOCK") packages)"
}

base_epoch() {
  sed -n 's/^# epoch: \([0-9]*\).*/\1/p' "$DEB_LOCK"
}

build_base() {  # prints the base layer's path
  local key tarball root
  key=$( { echo "recipe=$RECIPE suite=$SUITE uid=$APP_UID gid=$APP_GID"; cat "$DEB_LOCK"; declare -f mmdebstrap_base harden_base;
           echo "runtime=${RUNTIME_PACKAGES[*]} build-only=${BUILD_ONLY_PACKAGES[*]}"; cat "$LOCK_DIR/prune-base.py"; } | sha)
  tarball=$CACHE/base-${key:0:16}.tar
  if [ -f "$tarball" ]; then
    log "base layer cached: $tarball"
    echo "$tarball"; return
  fi
  log "building the Debian $SUITE base with mmdebstrap (pinned by ${DEB_LOCK#"$REPO"/})"
  root=$WORK/base-root
  write_pins > "$WORK/pins"
  mmdebstrap_base "$root" "$WORK/pins"
  harden_base "$root"
  if ! diff -u <(grep -v '^#' "$DEB_LOCK") "$WORK/installed" > "$WORK/deb.diff"; then
    cat "$WORK/deb.diff" >&2
    die "the mirror no longer serves the pinned package versions above (Debian replaces them on point releases and security updates). Run hack/build-image.sh --relock, review and commit hack/image/debian-packages.lock."
  fi
  "$HOST_PY" "$LOCK_DIR/prune-base.py" "$root" --keep "${RUNTIME_PACKAGES[@]}" --build-only "${BUILD_ONLY_PACKAGES[@]}" \
    || die "pruning the base of its build-only packages failed"
  det_tar "$root" "$tarball.tmp" "$BASE_EPOCH" .
  mv "$tarball.tmp" "$tarball"
  rm -rf "$root"
  log "base layer: $tarball ($(du -m "$tarball" | cut -f1) MB)"
  echo "$tarball"
}

# --- the Python environment -------------------------------------------------------------

pip_target=()
for p in "${PLATFORMS[@]}"; do pip_target+=(--platform "$p"); done
pip_target+=(--python-version "$PYTHON_VERSION" --implementation cp --only-binary=:all:)

build_wheel() {  # prints the modelsec wheel's path (built from the commit, not the working tree)
  local src=$WORK/src
  mkdir -p "$src" "$WORK/wheel"
  git -C "$REPO" archive --format=tar "$COMMIT" | tar -x -C "$src"
  SOURCE_DATE_EPOCH=$APP_EPOCH "$HOST_PY" -m pip wheel --quiet --no-deps --wheel-dir "$WORK/wheel" "$src" >&2 \
    || die "building the modelsec wheel from $COMMIT failed"
  ls "$WORK"/wheel/modelsec-*.whl
}

relock_python() {
  local wheel=$1
  log "resolving modelsec[$EXTRAS] for CPython $PYTHON_VERSION on ${PLATFORMS[*]}"
  "$HOST_PY" -m pip install --quiet --dry-run --ignore-installed --report "$WORK/report.json" \
    --target "$WORK/unused" "${pip_target[@]}" "$wheel[$EXTRAS]" >&2
  "$HOST_PY" - "$WORK/report.json" "$PY_LOCK" "$PYTHON_VERSION" "$EXTRAS" <<'PY'
import json, sys
report, lock, python, extras = sys.argv[1:5]
lines = []
for item in json.load(open(report))["install"]:
    meta = item["metadata"]
    if meta["name"].lower() == "modelsec":
        continue
    digest = item["download_info"]["archive_info"]["hashes"]["sha256"]
    lines.append(f"{meta['name'].lower()}=={meta['version']} --hash=sha256:{digest}")
with open(lock, "w") as out:
    out.write(f"# The image's Python packages: modelsec[{extras}] resolved for CPython {python}\n"
              "# (manylinux x86_64 wheels). Written by hack/build-image.sh --relock; pip installs\n"
              "# exactly these (--require-hashes) and nothing else.\n")
    out.write("\n".join(sorted(lines)) + "\n")
PY
  log "wrote $PY_LOCK ($(grep -vc '^#' "$PY_LOCK") packages)"
}

fetch_wheels() {
  log "wheels: ${PY_LOCK#"$REPO"/} into ${CACHE#"$REPO"/}/wheels"
  "$HOST_PY" -m pip download --quiet --no-deps --require-hashes --dest "$CACHE/wheels" "${pip_target[@]}" \
    -r "$PY_LOCK" >&2 || die "downloading the pinned wheels failed (PyPI reachable? hashes changed?)"
  "$HOST_PY" -m pip download --quiet --no-deps --dest "$CACHE/wheels" "pip==$PIP_VERSION" >&2 \
    || die "downloading pip $PIP_VERSION failed"
}

# The application layer: /opt/modelsec and /usr/share/modelsec, installed over the base
# with the image's own python3 (chroot), never the host's.
build_app_layer() {
  local base=$1 wheel=$2 layer=$3 root=$WORK/app-root
  mkdir -p "$root"
  tar -x -f "$base" -C "$root" --numeric-owner
  mkdir -p "$root/tmp/install"
  # Only the wheels the lock names (the cache may hold older ones).
  local name
  while read -r name; do
    cp "$CACHE/wheels/$name" "$root/tmp/install/"
  done < <("$HOST_PY" - "$PY_LOCK" "$CACHE/wheels" <<'PY'
import hashlib, pathlib, re, sys
lock, cache = sys.argv[1], pathlib.Path(sys.argv[2])
wanted = set(re.findall(r"--hash=sha256:([0-9a-f]{64})", open(lock).read()))
found = {hashlib.sha256(p.read_bytes()).hexdigest(): p.name for p in cache.glob("*.whl")}
missing = wanted - found.keys()
if missing:
    sys.exit(f"wheels missing from the cache: {sorted(missing)}")
print("\n".join(found[h] for h in sorted(wanted)))
PY
  )
  cp "$wheel" "$CACHE/wheels/pip-$PIP_VERSION-py3-none-any.whl" "$root/tmp/install/"
  cp "$PY_LOCK" "$root/tmp/install/requirements.lock"
  cp "$UNUSED" "$root/tmp/install/unused-distributions.txt"
  local pip=(chroot "$root" /opt/modelsec/bin/python "/tmp/install/pip-$PIP_VERSION-py3-none-any.whl/pip")
  chroot "$root" /usr/bin/python3 -m venv --without-pip /opt/modelsec
  "${pip[@]}" install --quiet --no-index --find-links /tmp/install --no-cache-dir --no-compile \
    --require-hashes -r /tmp/install/requirements.lock >&2
  "${pip[@]}" install --quiet --no-index --no-deps --no-cache-dir --no-compile "/tmp/install/$(basename "$wheel")" >&2
  "${pip[@]}" check >&2 || die "the installed packages do not satisfy each other's requirements"
  "${pip[@]}" uninstall --quiet --yes -r /tmp/install/unused-distributions.txt >&2
  local site=$root/opt/modelsec/lib/python$PYTHON_VERSION/site-packages
  sh "$REPO/hack/image/trim-site-packages.sh" "$site"
  strip_libraries "$site"
  compile_bytecode "$root" "${site#"$root"}"
  rm -rf "$root/tmp/install"
  find "$root/opt/modelsec" -name 'direct_url.json' -delete  # names the build's temp path
  mkdir -p "$root/usr/share/modelsec"
  cp -r "$WORK/src/examples" "$root/usr/share/modelsec/examples"  # the commit's, as the wheel
  chown -R 0:0 "$root/opt/modelsec" "$root/usr/share/modelsec"
  chmod -R u=rwX,go=rX "$root/opt/modelsec" "$root/usr/share/modelsec"
  det_tar "$root" "$layer" "$APP_EPOCH" opt/modelsec usr/share/modelsec
  rm -rf "$root"
}

# Symbol tables are for debuggers; the dynamic symbols the loader needs stay (27 MB less).
# Not the packages auditwheel repaired (they vendor a <package>.libs folder): patchelf
# rewrote those files' layout, and strip can break it (numpy's OpenBLAS then fails to load:
# "ELF load command address/offset not page-aligned").
strip_libraries() {  # SITE
  local site=$1 vendored skip=()
  for vendored in "$site"/*.libs; do
    [ -d "$vendored" ] || continue
    skip+=(! -path "$vendored/*" ! -path "${vendored%.libs}/*")
  done
  find "$site" -type f -name '*.so*' "${skip[@]}" -exec strip --strip-unneeded {} + \
    || die "strip failed on a shared library of $site"
}

# Bytecode ahead of time: the root filesystem is read-only in the cluster, so Python could
# never cache it (issue 14: start-up). unchecked-hash: valid for an image whose sources never
# change. modelsec's packages: sources and __pycache__ (the wheel's bytecode for the build
# host's Python is dropped). Every other package: bytecode beside where the source was,
# which Python imports without the source, and the source removed.
compile_bytecode() {  # ROOT SITE (SITE as seen inside ROOT)
  local root=$1 site=$2 own=() skip_own=() package source
  for package in "${OWN_PACKAGES[@]}"; do
    own+=("$site/$package")
    skip_own+=(-path "$root$site/$package" -prune -o)
  done
  find "$root$site" -path '*/__pycache__/*.pyc' ! -name "*.cpython-${PYTHON_VERSION/./}.pyc" -delete
  chroot "$root" /opt/modelsec/bin/python -m compileall -q -b --invalidation-mode unchecked-hash \
    -x "^$site/($(IFS='|'; echo "${OWN_PACKAGES[*]}"))/" "$site" >&2 || die "compiling the third-party packages failed"
  find "$root$site" "${skip_own[@]}" -type f -name '*.py' -print | while read -r source; do
    if [ -f "${source}c" ]; then rm -f "$source"; fi
  done
  chroot "$root" /opt/modelsec/bin/python -m compileall -q --invalidation-mode unchecked-hash \
    "${own[@]}" >&2 || die "compiling modelsec failed"
}

# --- the OCI image ----------------------------------------------------------------------

pack_image() {
  local base=$1 app=$2 out=$3 layout=$WORK/layout created
  created=$(date -u -d "@$APP_EPOCH" +%Y-%m-%dT%H:%M:%SZ)
  local base_created
  base_created=$(date -u -d "@$BASE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)
  umoci init --layout "$layout"
  umoci new --image "$layout:$VERSION"
  umoci raw add-layer --image "$layout:$VERSION" --history.created "$base_created" \
    --history.created_by "mmdebstrap --variant=essential $SUITE + ${DEBIAN_PACKAGES[*]} (hack/build-image.sh)" "$base"
  umoci raw add-layer --image "$layout:$VERSION" --history.created "$created" \
    --history.created_by "modelsec $VERSION ($REVISION) in /opt/modelsec (hack/build-image.sh)" "$app"
  umoci config --image "$layout:$VERSION" --no-history --created "$created" --author "modelsec" \
    --architecture amd64 --os linux \
    --config.user "$APP_UID:$APP_GID" \
    --config.entrypoint /opt/modelsec/bin/modelsec --config.cmd --help \
    --config.workingdir /home/modelsec \
    --config.env PATH=/opt/modelsec/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --config.env HOME=/home/modelsec --config.env PYTHONDONTWRITEBYTECODE=1 --config.env PYTHONUNBUFFERED=1 \
    --config.label "org.opencontainers.image.title=modelsec" \
    --config.label "org.opencontainers.image.description=Kubernetes-native AI model security: scanner, operator and admission webhook" \
    --config.label "org.opencontainers.image.version=$VERSION" \
    --config.label "org.opencontainers.image.revision=$REVISION" \
    --config.label "org.opencontainers.image.created=$created" \
    --config.label "org.opencontainers.image.licenses=Apache-2.0" \
    --config.label "org.opencontainers.image.base.name=debian:$SUITE"
  umoci gc --layout "$layout"
  # The name containerd (kind load image-archive) and podman give the image on import.
  "$HOST_PY" - "$layout/index.json" "$IMAGE_NAME:$VERSION" <<'PY'
import json, sys
path, name = sys.argv[1], sys.argv[2]
index = json.load(open(path))
for manifest in index["manifests"]:
    manifest.setdefault("annotations", {})["io.containerd.image.name"] = name
json.dump(index, open(path, "w"), separators=(",", ":"), sort_keys=True)
PY
  echo '{"imageLayoutVersion":"1.0.0"}' > "$layout/oci-layout"
  det_tar "$layout" "$out.tmp" "$APP_EPOCH" .
  mv "$out.tmp" "$out"
}

report() {
  local archive=$1
  "$HOST_PY" - "$archive" <<'PY' >&2
import json, sys, tarfile
with tarfile.open(sys.argv[1]) as tar:
    def blob(digest):
        return tar.extractfile("./blobs/sha256/" + digest.split(":", 1)[1]).read()
    index = json.loads(tar.extractfile("./index.json").read())
    descriptor = index["manifests"][0]
    manifest = json.loads(blob(descriptor["digest"]))
    config = json.loads(blob(manifest["config"]["digest"]))
    compressed = sum(layer["size"] for layer in manifest["layers"])
    uncompressed = 0
    import gzip, io
    for layer in manifest["layers"]:
        with gzip.GzipFile(fileobj=io.BytesIO(blob(layer["digest"]))) as stream:
            while chunk := stream.read(1 << 20):
                uncompressed += len(chunk)
print(f"build-image: image {descriptor['annotations'].get('io.containerd.image.name')} "
      f"manifest {descriptor['digest']}")
print(f"build-image: size {uncompressed / 1e6:.1f} MB uncompressed (layers as tar), "
      f"{compressed / 1e6:.1f} MB compressed; user {config['config']['User']}")
PY
}

# --- main -------------------------------------------------------------------------------

if [ "$mode" = relock ]; then
  relock_debian
fi
[ -f "$DEB_LOCK" ] || die "no $DEB_LOCK: run hack/build-image.sh --relock"
BASE_EPOCH=$(base_epoch)
[ -n "$BASE_EPOCH" ] || die "$DEB_LOCK has no '# epoch:' line; run hack/build-image.sh --relock"
base=$(build_base)
wheel=$(build_wheel)
if [ "$mode" = relock ] || [ ! -f "$PY_LOCK" ]; then
  relock_python "$wheel"
fi
key=$( { echo "recipe=$RECIPE name=$IMAGE_NAME version=$VERSION revision=$REVISION epoch=$APP_EPOCH";
         basename "$base"; cat "$PY_LOCK"; sha256sum < "$wheel"; declare -f build_app_layer strip_libraries compile_bytecode pack_image; cat "$REPO/hack/image/trim-site-packages.sh";
         cat "$UNUSED"; echo "own=${OWN_PACKAGES[*]}"; strip --version | head -1;
         echo "extras=$EXTRAS"; git -C "$REPO" ls-tree -r "$COMMIT" examples; } | sha)
cached=$CACHE/modelsec-$VERSION-${key:0:16}.oci.tar
if [ -f "$cached" ]; then
  log "image cached for $REVISION: $cached"
else
  fetch_wheels
  log "installing modelsec $VERSION ($(basename "$wheel")) into /opt/modelsec"
  build_app_layer "$base" "$wheel" "$WORK/app.tar"
  log "packing the OCI image with umoci"
  pack_image "$base" "$WORK/app.tar" "$cached"
fi
cp "$cached" "$OUT.tmp" && mv "$OUT.tmp" "$OUT"
# Keep the cache bounded: the newest few archives and base layers.
ls -t "$CACHE"/modelsec-*.oci.tar 2>/dev/null | tail -n +4 | xargs -r rm -f
ls -t "$CACHE"/base-*.tar 2>/dev/null | tail -n +3 | xargs -r rm -f
report "$OUT"
log "wrote $OUT in $(( $(date +%s) - started ))s"
echo "$OUT"
