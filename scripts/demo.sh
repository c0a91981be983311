#!/usr/bin/env bash
# The demo: kao serves the sample video (Megamind.avi, from Debian's
# opencv-doc) on a private socket, and `kao watch` prints 50 frames of faces
# and keypoints. The daemon is stopped when the watcher is done.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
kao=target/release/kao
video=/usr/share/doc/opencv-doc/examples/data/Megamind.avi
frames=${FRAMES:-50}
dir=$(mktemp -d)
socket="$dir/kao.sock"
cleanup() {
  [ -n "${pid:-}" ] && kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT

"$kao" serve --config config/kao.toml --source "$video" --socket "$socket" 2> "$dir/serve.log" &
pid=$!
for _ in $(seq 1 100); do
  [ -S "$socket" ] && break
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "demo: kao serve exited early:" >&2
    cat "$dir/serve.log" >&2
    exit 1
  fi
  sleep 0.1
done
echo "demo: kao serve is running (pid $pid) on $socket; printing $frames frames" >&2
"$kao" watch --socket "$socket" --frames "$frames"
echo "demo: daemon log:" >&2
tail -n 5 "$dir/serve.log" >&2
