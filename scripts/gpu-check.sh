#!/usr/bin/env bash
# On a machine with an NVIDIA GPU: installs the GPU build of ONNX Runtime
# and the CUDA, cuDNN and TensorRT libraries it needs from PyPI wheels (in
# .cache/gpuvenv), builds kao with the `cuda` and `tensorrt` features, and
# runs `kao bench` with the CPU, CUDA and TensorRT providers, printing the
# provider each model really runs on and the rates.
#
#   scripts/gpu-check.sh [--frames N] [--video FILE]
#
# Environment: PYTHON (default python3); ORT_GPU_SPEC (default
# onnxruntime-gpu[cuda,cudnn], the CUDA 12 build with its CUDA and cuDNN
# wheels); TRT_SPEC (default tensorrt-cu12-libs>=10,<11: the TensorRT major
# version must be the one the onnxruntime-gpu release was built against,
# see its release notes). Exit status 2 when there is no GPU or a step
# cannot run. Nothing here is needed on a CPU-only machine.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
frames=200
video=/usr/share/doc/opencv-doc/examples/data/Megamind.avi
while [ $# -gt 0 ]; do
  case "$1" in
    --frames) frames=$2; shift 2 ;;
    --video) video=$2; shift 2 ;;
    -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "gpu-check: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
say() { printf 'gpu-check: %s\n' "$*" >&2; }

if ! command -v nvidia-smi >/dev/null || ! nvidia-smi -L >/dev/null 2>&1; then
  say "no NVIDIA GPU here (nvidia-smi finds none); kao runs on the CPU, nothing to check"
  exit 2
fi
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader >&2

# The GPU build of ONNX Runtime and its libraries, as wheels.
venv="$root/.cache/gpuvenv"
python=${PYTHON:-python3}
if [ ! -x "$venv/bin/python" ]; then
  say "creating $venv"
  "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --upgrade \
  "${ORT_GPU_SPEC:-onnxruntime-gpu[cuda,cudnn]}" "${TRT_SPEC:-tensorrt-cu12-libs>=10,<11}"

# Where the wheels put libonnxruntime.so and the libraries its providers
# load (libcudart, libcublas, libcudnn, libnvinfer, ...).
eval "$("$venv/bin/python" - <<'PY'
import glob, os, site
sp = site.getsitepackages()[0]
ort = sorted(glob.glob(os.path.join(sp, "onnxruntime", "capi", "libonnxruntime.so*")))
if not ort:
    raise SystemExit("echo 'gpu-check: onnxruntime-gpu installed no libonnxruntime.so' >&2; exit 2")
dirs = sorted({os.path.dirname(p) for p in glob.glob(os.path.join(sp, "nvidia", "*", "lib", "*.so*"))})
dirs += sorted({os.path.dirname(p) for p in glob.glob(os.path.join(sp, "tensorrt_libs", "*.so*"))})
dirs.append(os.path.dirname(ort[0]))
print(f"export ORT_DYLIB_PATH='{ort[0]}'")
print(f"export LD_LIBRARY_PATH='{':'.join(dirs)}'${{LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}}")
PY
)"
say "ONNX Runtime: $ORT_DYLIB_PATH"

(cd "$root" && cargo build --release --locked --features cuda,tensorrt)
kao="$root/target/release/kao"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export XDG_STATE_HOME="$root/.cache/gpu-state"   # TensorRT engines persist here

run() {
  local label=$1 providers=$2 extra=${3:-}
  printf '[runtime]\nproviders = %s\n%b' "$providers" "$extra" > "$work/$label.toml"
  say "$label: providers $providers"
  (cd "$root" && KAO_LOG=info "$kao" bench --config "$work/$label.toml" --source "$video" \
    --frames "$frames" --json > "$work/$label.json" 2> "$work/$label.log") || {
    say "$label failed:"; tail -20 "$work/$label.log" >&2; return 0; }
  grep -E 'model ready|not available|some on cpu' "$work/$label.log" | sed "s/^/  [$label] /" >&2 || true
  "$venv/bin/python" - "$label" "$work/$label.json" <<'PY'
import json, sys
label, path = sys.argv[1], sys.argv[2]
r = json.load(open(path))
prov = " ".join(f"{m}={p}" for m, p in r["providers"])
stages = {s["stage"]: s for s in r["stages"]}
p = stages["processing"]
print(f"{label:<16} {r['fps']:8.1f} frames/s  processing mean {p['mean']:.2f} ms p99 {p['p99']:.2f} ms  "
      f"inside ORT {r['ort_percent']:.0f} %  faces/frame {r['faces_per_frame']:.2f}  providers: {prov}")
PY
}

echo "== kao bench, $frames frames of $video"
run cpu '["cpu"]'
run cuda '["cuda", "cpu"]'
run cuda-2-workers '["cuda", "cpu"]' 'workers = 2\n'
# The first TensorRT run builds engines (slow); the second loads them from
# the cache in $XDG_STATE_HOME/kao/tensorrt.
run tensorrt-build '["tensorrt", "cuda", "cpu"]'
run tensorrt '["tensorrt", "cuda", "cpu"]'
run tensorrt-fp16 '["tensorrt", "cuda", "cpu"]' 'fp16 = true\n'
