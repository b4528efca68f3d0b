#!/usr/bin/env bash
# Fetch the demo image: one real fluorescence nuclei image with its ground truth (Kaggle Data Science Bowl 2018,
# Caicedo et al. 2019) as shipped inside the BSD-3-licensed `stardist` wheel on PyPI, pinned by version and sha256,
# with the wheel's licence kept beside it. Idempotent. Nothing of it is committed to the project.
# Usage: scripts/fetch-demo-image.sh [DEST]   (default: .demo-image in the repository root); prints DEST
set -euo pipefail
VERSION=0.9.1
WHEEL=stardist-${VERSION}-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl
WHEEL_SHA256=1f2caf3a071c1ead1b0cbbf9614ff2c82967be1bd22764f097871fb9bbd2718f
IMAGE_SHA256=f9ccc1571b92c861ff87e28463068b43f61bd47357ed0503f711e5cd1eb97750
MASK_SHA256=59ad5e820b7982ca9d13e946fa6e7f64e2714899e00a2ae6c69aa79aad53d46f

root=$(cd "$(dirname "$0")/.." && pwd)
dest=${1:-$root/.demo-image}
if [ -f "$dest/.complete" ]; then
  echo "$dest"
  exit 0
fi
mkdir -p "$dest"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.11 \
  --platform manylinux2014_x86_64 "stardist==$VERSION" -d "$tmp" >&2
echo "$WHEEL_SHA256  $tmp/$WHEEL" | sha256sum --check --quiet - >&2
python3 - "$tmp/$WHEEL" "$tmp" <<'PY'
import sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
for name in ("stardist/data/images/img2d.tif", "stardist/data/images/mask2d.tif", "stardist-0.9.1.dist-info/LICENSE.txt"):
    z.extract(name, sys.argv[2])
PY
echo "$IMAGE_SHA256  $tmp/stardist/data/images/img2d.tif" | sha256sum --check --quiet - >&2
echo "$MASK_SHA256  $tmp/stardist/data/images/mask2d.tif" | sha256sum --check --quiet - >&2
mkdir -p "$dest/images" "$dest/labels"
cp "$tmp/stardist/data/images/img2d.tif" "$dest/images/dsb2018-nuclei.tif"
cp "$tmp/stardist/data/images/mask2d.tif" "$dest/labels/dsb2018-nuclei.tif"
cp "$tmp/stardist-$VERSION.dist-info/LICENSE.txt" "$dest/LICENSE-stardist.txt"
cat > "$dest/README.txt" <<TXT
Demo image: one fluorescence nuclei image (512x512, 16-bit) and its instance labels (125 nuclei) from the Kaggle
Data Science Bowl 2018 (Caicedo et al., Nature Methods 2019), as shipped in stardist $VERSION (BSD-3-Clause,
LICENSE-stardist.txt). Fetched by scripts/fetch-demo-image.sh; used by make demo for evaluation only, never for training.
TXT
touch "$dest/.complete"
echo "$dest"
