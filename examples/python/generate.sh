#!/usr/bin/env bash
# Generates the Python stubs of the posfleet protocol into python/gen/ with
# Debian's protoc (protobuf-compiler) and grpc_python_plugin
# (protobuf-compiler-grpc). The google.rpc status and error-detail messages
# come from the googleapis Go module via a descriptor set (see
# examples/googlerpc), since Debian ships no Python package for them.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
out="$here/gen"
rm -rf "$out"
mkdir -p "$out"
protoc -I "$root/proto" -I /usr/include \
  --python_out="$out" --grpc_python_out="$out" \
  --plugin=protoc-gen-grpc_python="$(command -v grpc_python_plugin)" \
  "$root"/proto/posfleet/v1/*.proto
(cd "$root" && go run ./examples/googlerpc) >"$out/googlerpc.binpb"
protoc --descriptor_set_in="$out/googlerpc.binpb" --python_out="$out" \
  google/rpc/status.proto google/rpc/error_details.proto
