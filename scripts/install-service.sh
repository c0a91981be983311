#!/usr/bin/env bash
# Installs kao as a systemd service: the binary, the models, ONNX Runtime,
# /etc/kao/kao.toml (kept if it exists), the unit, and the `kao` user.
#
#   make install                          builds, then runs this as root
#   scripts/install-service.sh --destdir /tmp/stage   stages the files only
#                                          (no user, no systemctl)
#
# Then: systemctl enable --now kao; add people to group `kao` to let them
# connect to /run/kao/kao.sock. See docs/SERVICE.md.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
prefix=/usr/local
destdir=""
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) prefix=$2; shift 2 ;;
    --destdir) destdir=$2; shift 2 ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "install-service: unknown option $1 (try --help)" >&2; exit 2 ;;
  esac
done

bin="$root/target/release/kao"
ort=$(ls "$root"/.cache/onnxruntime/libonnxruntime.so.* 2>/dev/null | head -1 || true)
for f in "$bin" "$root/models/mtcnn/manifest.toml" "$ort"; do
  if [ -z "$f" ] || [ ! -e "$f" ]; then
    echo "install-service: ${f:-ONNX Runtime library} is missing; run \`make build\` first" >&2
    exit 1
  fi
done

share="$prefix/share/kao"
lib="$prefix/lib/kao/$(basename "$ort")"
install -D -m 0755 "$bin" "$destdir$prefix/bin/kao"
install -D -m 0644 "$ort" "$destdir$lib"
for f in "$root"/models/mtcnn/*; do
  install -D -m 0644 "$f" "$destdir$share/models/mtcnn/$(basename "$f")"
done
[ -f "$root/docs/SERVICE.md" ] && install -D -m 0644 "$root/docs/SERVICE.md" "$destdir$prefix/share/doc/kao/SERVICE.md"

# The configuration: the shipped one with installed paths, never overwriting
# an operator's file.
conf="$destdir/etc/kao/kao.toml"
if [ -e "$conf" ]; then
  echo "install-service: keeping the existing $conf" >&2
else
  mkdir -p "$(dirname "$conf")"
  sed -e "s|^manifest = .*|manifest = \"$share/models/mtcnn/manifest.toml\"|" \
      -e "s|^ort_library = .*|ort_library = \"$lib\"|" \
      "$root/config/kao.toml" > "$conf"
  chmod 0644 "$conf"
fi

unit="$destdir/etc/systemd/system/kao.service"
mkdir -p "$(dirname "$unit")"
sed -e "s|/usr/local/bin/kao|$prefix/bin/kao|" \
    -e "s|/usr/local/share/doc/kao|$prefix/share/doc/kao|" \
    "$root/systemd/kao.service" > "$unit"
chmod 0644 "$unit"

if [ -n "$destdir" ]; then
  echo "install-service: staged under $destdir (no user created, systemd not told)"
  exit 0
fi

if ! getent passwd kao >/dev/null; then
  useradd --system --user-group --home-dir /var/lib/kao --no-create-home \
    --shell /usr/sbin/nologin --comment "kao face detection daemon" kao
  echo "install-service: created user and group kao"
fi
systemd-analyze verify "$unit"
"$prefix/bin/kao" check-config "$conf" || {
  echo "install-service: $conf does not check out; fix it before starting kao" >&2
  exit 1
}
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload
  echo "install-service: installed; start with: systemctl enable --now kao"
else
  echo "install-service: installed; systemd is not running here, so nothing was started"
fi
