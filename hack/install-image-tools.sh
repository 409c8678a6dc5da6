#!/usr/bin/env bash
# Install the host tools the container image is built and tested with (hack/build-image.sh,
# tests/image): mmdebstrap and umoci from Debian, plus binutils' strip and util-linux's
# unshare and mount where missing. Pinned to Debian 12 (bookworm)'s versions; idempotent:
# nothing is done when every tool is there. Needs root and apt-get (the image tests need
# root anyway); elsewhere it says what to install and fails.
set -euo pipefail
PACKAGES=(mmdebstrap=1.3.5-7 umoci=0.4.7+ds-3+b7 binutils util-linux)
missing=()
for tool in mmdebstrap umoci strip unshare mount; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
[ "${#missing[@]}" -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "install-image-tools: missing ${missing[*]}; as root on Debian: apt-get install ${PACKAGES[*]}" >&2
  exit 1
fi
echo "install-image-tools: installing ${PACKAGES[*]} (missing: ${missing[*]})" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" >&2
