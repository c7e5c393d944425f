#!/usr/bin/env bash
# Builds the release folder: removes it, then copies into it what the server needs and
# nothing else. Nothing is downloaded here; `run` installs the pinned requirements on
# its first start.
#
#     ./build.sh [DEST]        DEST defaults to ./release
#     cd release && nohup ./run >>./log.log 2>&1 &
#
# build.bat does the same on Windows; tests/test_release.py checks that both copy the
# same files.
set -euo pipefail

root=$(dirname "$(readlink -f "$0")")
cd "$root"
dest=$(readlink -m -- "${1:-release}")

fail() {
  echo "build.sh: $1" >&2
  exit 1
}
trap 'fail "failed at line $LINENO: $BASH_COMMAND"' ERR

# Refuse a DEST whose removal would take the sources (or the whole disk) with it.
under="${dest%/}/"
case "$root/" in
  "$under"*) fail "refusing to build into $dest: it holds the sources" ;;
esac
for source in wsgi.py requirements.txt imchat view asset deploy/run deploy/run.bat \
              deploy/env.sample deploy/nginx-imchat.conf deploy/imchat.service; do
  [ -e "$source" ] || fail "missing $root/$source"
done

rm -rf -- "$dest"
mkdir -p -- "$dest" "$dest/deploy"

cp -- wsgi.py "$dest/wsgi.py"
cp -- requirements.txt "$dest/requirements.txt"
cp -R -- imchat "$dest/imchat"
cp -R -- view "$dest/view"
cp -R -- asset "$dest/asset"
cp -- deploy/run "$dest/run"
cp -- deploy/run.bat "$dest/run.bat"
cp -- deploy/env.sample "$dest/env.sample"
cp -- deploy/nginx-imchat.conf "$dest/deploy/nginx-imchat.conf"
cp -- deploy/imchat.service "$dest/deploy/imchat.service"

# Bytecode caches from this checkout are not part of the release.
find "$dest" -name __pycache__ -type d -prune -exec rm -rf {} +
chmod +x "$dest/run"

echo "built $dest: $(find "$dest" -type f | wc -l) files"
echo "start it with: cd $dest && nohup ./run >>./log.log 2>&1 &"
