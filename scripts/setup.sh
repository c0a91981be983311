#!/usr/bin/env bash
# Installs the system packages kao builds and runs with (Debian 12 / Ubuntu),
# then fetches ONNX Runtime, the models and the sample photos. Idempotent:
# installed packages and verified files are left alone.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

# What the opencv crate needs to build (OpenCV 4.6 headers, libclang for its
# binding generator, pkg-config), and opencv-doc for the sample video
# (examples/data/Megamind.avi) and photo (messi5.jpg).
# systemd for `systemd-analyze verify` of the unit (make service-check), even
# where systemd is not the init (containers). For the HTTP tests: chromium
# (the viewer in a real browser) and prometheus (promtool checks /metrics).
packages=(libopencv-dev clang libclang-dev pkg-config opencv-doc systemd chromium prometheus)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "setup: installing ${missing[*]}" >&2
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# kao is built and tested against OpenCV 4.6 (Debian 12); say so if this
# machine has another version rather than failing obscurely later.
v=$(pkg-config --modversion opencv4 2>/dev/null || echo none)
case "$v" in
  4.6.*) ;;
  *) echo "setup: warning: OpenCV $v found; kao is tested with 4.6 (Debian 12)" >&2 ;;
esac

# cargo-fuzz for the short fuzz pass of `make test`, pinned (crates.io
# checks the crate's checksum; --locked pins its dependencies).
CARGO_FUZZ_VERSION=0.13.2
if ! cargo fuzz --version 2>/dev/null | grep -qx "cargo-fuzz $CARGO_FUZZ_VERSION"; then
  echo "setup: installing cargo-fuzz $CARGO_FUZZ_VERSION" >&2
  cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked
fi

# The browser test drives Debian's chromium with playwright-core, pinned with
# its integrity hash in tests/browser/package-lock.json and installed there
# (never a browser download: its install scripts are not run).
browser="$root/tests/browser"
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "setup: node and npm are missing; install Node.js 20 or newer (needed by the browser test)" >&2
  exit 1
fi
node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 20 ]; then
  echo "setup: Node.js $(node --version) is too old for playwright-core; install Node.js 20 or newer" >&2
  exit 1
fi
if [ ! -f "$browser/node_modules/.package-lock.json" ] ||
  [ "$browser/package-lock.json" -nt "$browser/node_modules/.package-lock.json" ]; then
  echo "setup: installing playwright-core into tests/browser/node_modules" >&2
  (cd "$browser" && npm ci --ignore-scripts --no-audit --no-fund)
fi

"$root/scripts/fetch-assets.sh"
