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
# where systemd is not the init (containers).
packages=(libopencv-dev clang libclang-dev pkg-config opencv-doc systemd)

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

# cargo-fuzz for the short fuzz pass of `make test`.
if ! command -v cargo-fuzz >/dev/null; then
  echo "setup: installing cargo-fuzz" >&2
  cargo install cargo-fuzz --locked
fi

"$root/scripts/fetch-assets.sh"
