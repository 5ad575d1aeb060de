#!/usr/bin/env bash
# Runs a command with a software WebGPU adapter: Mesa's llvmpipe (OpenGL 4.5 on the CPU)
# behind Dawn's OpenGL backend in compatibility mode. For machines without a GPU, so that
# the webgpu tests (test/gpu/webgpu.test.ts) and kernels run somewhere; slow, and no
# measure of GPU speed.
#   test/gpu/with-mesa.sh node test/run.mjs test/gpu
# Mesa's Vulkan driver (lavapipe 22.3, Debian 12) is not enough for Dawn's Vulkan backend
# ("shaderUniform*ArrayDynamicIndexing required"), hence OpenGL. Needs apt (Debian/Ubuntu);
# the packages are unpacked into a cache folder, nothing is installed.
set -euo pipefail
cache="${QLORA_MESA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/qlora-mesa}"
lib="$cache/root/usr/lib/x86_64-linux-gnu"
if [ ! -e "$lib/dri/swrast_dri.so" ]; then
  mkdir -p "$cache/debs"
  (cd "$cache/debs" && apt-get download libegl1 libegl-mesa0 libgl1-mesa-dri libglvnd0 libgbm1 libgles2 libglapi-mesa >&2)
  for f in "$cache"/debs/*.deb; do dpkg -x "$f" "$cache/root"; done
fi
sed "s#\"library_path\" *: *\"[^\"]*\"#\"library_path\" : \"$lib/libEGL_mesa.so.0\"#" \
  "$cache/root/usr/share/glvnd/egl_vendor.d/50_mesa.json" >"$cache/egl_mesa.json"
export LD_LIBRARY_PATH="$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export __EGL_VENDOR_LIBRARY_FILENAMES="$cache/egl_mesa.json" LIBGL_DRIVERS_PATH="$lib/dri" EGL_PLATFORM=surfaceless
export QLORA_DAWN_OPTIONS=backend=opengl QLORA_WEBGPU_COMPAT=1 QLORA_WEBGPU_ALLOW_SOFTWARE=1
exec "$@"
