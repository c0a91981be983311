#!/usr/bin/env bash
# The demo: kao serves the sample video (Megamind.avi, from Debian's
# opencv-doc) on a private socket and on HTTP, prints the browser viewer's
# URL, and `kao watch` prints 50 frames of faces and keypoints. Run from a
# terminal, the daemon then keeps serving the viewer until Ctrl-C; otherwise
# it is stopped when the watcher is done.
#   KAO_HTTP=127.0.0.1:0 ./scripts/demo.sh   any free port instead of 8470
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

"$kao" serve --config config/kao.toml --source "$video" --socket "$socket" \
  --http "${KAO_HTTP:-127.0.0.1:8470}" > "$dir/serve.out" 2> "$dir/serve.log" &
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
url=""
for _ in $(seq 1 100); do
  url=$(grep -o 'http://[^ ]*' "$dir/serve.out" 2>/dev/null | head -n 1 || true)
  [ -n "$url" ] && break
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
if [ -z "$url" ]; then
  echo "demo: kao serve did not start its HTTP server:" >&2
  cat "$dir/serve.log" >&2
  exit 1
fi
echo "demo: kao serve is running (pid $pid) on $socket; printing $frames frames" >&2
echo "demo: open the viewer at $url"
"$kao" watch --socket "$socket" --frames "$frames"
echo "demo: daemon log:" >&2
tail -n 5 "$dir/serve.log" >&2
if [ -t 0 ] && [ -t 1 ]; then
  echo "demo: the viewer stays at $url; press Ctrl-C to stop" >&2
  wait "$pid" || true
fi
