#!/usr/bin/env bash
# A Fiji update-site folder: the files the U-Net plugin adds to Fiji.app, in Fiji's layout, ready for Fiji's
# updater to upload (ImageJ's update sites are uploaded from a Fiji installation, which writes the site's
# db.xml.gz itself). Also usable without an update site: copy plugins/ and lib/ into Fiji.app.
# Usage: scripts/fiji-update-site.sh [DEST]   (default out/fiji-update-site)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
dest=${1:-out/fiji-update-site}
rm -rf "$dest"
scripts/build-imagej-plugin.sh "$dest" release >/dev/null
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
cat > "$dest/UPLOAD.md" <<DOC
# U-Net for Fiji, version $version: update-site files

    plugins/UNet_Plugin.jar        the commands (Plugins > U-Net > U-Net Segment, U-Net Weight Map)
    lib/linux64/libunet.so         the library, with the default and EM models inside
    lib/linux64/libonnxruntime.so* ONNX Runtime (CPU); for CUDA put onnxruntime-gpu's library there instead

Fiji ships JNA (jars/jna-*.jar), which the plugin needs; plain ImageJ 1.x needs jna.jar on its class path.

## Publish it as an update site
1. Create a personal update site: Fiji > Help > Update... > Manage update sites > Add my site (an account on
   sites.imagej.net), or add your own site's URL and upload method.
2. Copy this folder's plugins/ and lib/ into Fiji.app (the files keep these relative paths).
3. Help > Update..., set the new files' update site to yours (right-click > Upload to ...), then Apply changes
   (Upload). The updater writes db.xml.gz and the timestamped copies on the site.
4. Users add the site's URL under Manage update sites and restart Fiji.

## Without an update site
Copy plugins/ and lib/ into Fiji.app and restart Fiji.
DOC
# The layout the plugin's loader looks in (the jar's folder, ../lib/linux64): checked here, run by test-imagej.sh.
for f in plugins/UNet_Plugin.jar lib/linux64/libunet.so; do [ -f "$dest/$f" ] || { echo "missing $f"; exit 1; }; done
ls "$dest"/lib/linux64/libonnxruntime.so* >/dev/null
echo "$dest"
