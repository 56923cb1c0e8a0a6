#!/usr/bin/env bash
# Builds versioned release binaries of posfleet and their SHA256SUMS.
#
#   scripts/release.sh [VERSION]
#
# VERSION defaults to `git describe --tags --always --dirty`. Binaries are
# static (CGO_ENABLED=0), built with -trimpath and stamped with the version
# (posfleet version) and the VCS revision (go version -m), into
# dist/posfleet-VERSION-OS-ARCH, with dist/SHA256SUMS in the format
# `sha256sum -c` checks. TARGETS (space-separated OS/ARCH) narrows the set;
# OUT changes the output directory.
set -euo pipefail
cd "$(dirname "$0")/.."

version=${1:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
if [[ ! $version =~ ^[A-Za-z0-9][A-Za-z0-9._+-]*$ ]]; then
  echo "release: version '$version' must be letters, digits, '.', '_', '+' or '-'" >&2
  exit 2
fi
targets=${TARGETS:-"linux/amd64 linux/arm64 darwin/amd64 darwin/arm64"}
out=${OUT:-dist}

# posfleet version reads these (internal/buildinfo).
pkg=github.com/posfleet/posfleet/internal/buildinfo
built=$(date -u +%Y-%m-%dT%H:%M:%SZ)

mkdir -p "$out"
names=()
for target in $targets; do
  os=${target%/*}
  arch=${target#*/}
  name="posfleet-$version-$os-$arch"
  echo "building $name"
  CGO_ENABLED=0 GOOS=$os GOARCH=$arch go build -trimpath -buildvcs=auto \
    -ldflags "-s -w -X $pkg.version=$version -X $pkg.buildTime=$built" \
    -o "$out/$name" ./cmd/posfleet
  names+=("$name")
done

(cd "$out" && sha256sum "${names[@]}" > SHA256SUMS)
echo "wrote $out/SHA256SUMS"
cat "$out/SHA256SUMS"
