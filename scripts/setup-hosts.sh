#!/usr/bin/env bash
# Installs what the host tests need, idempotently: Debian packages (CMake, ImageJ, JNA, Xvfb, the libraries Qt
# needs for napari) and a Python venv with napari. Needs root for apt (CI and the dev machines run as root).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
packages=(cmake pkg-config g++ valgrind default-jdk-headless imagej libjna-java xvfb xauth libgl1 libegl1 libgl1-mesa-dri
  libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-xinerama0 libxcb-randr0 libxcb-render-util0
  libxcb-image0 libxcb-shape0 libfontconfig1 libdbus-1-3)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi
if [ "${1:-}" != "--no-python" ]; then
  venv=$root/.venv
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  if ! "$venv/bin/python" -c "import napari, pytest, pytestqt, dask, onnxruntime, npe2, distributed, zarr, ome_zarr, dask_image" 2>/dev/null; then
    "$venv/bin/pip" install --quiet "napari[pyqt5]==0.9.2" pytest pytest-qt "dask[array]" "onnxruntime==1.31.1" "numpy<3" \
      "distributed==2026.8.0" "zarr==3.1.6" "ome-zarr==0.18.0" "dask-image==2026.5.0" >&2
  fi
fi
