#!/usr/bin/env bash
# Sets up everything the test suite needs and runs it: a virtual environment in .venv
# with the pinned packages, and (for the browser tests) Debian's chromium when this
# machine lacks it and we may install it. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -r requirements-dev.txt

# Chromium for the browser tests, with CJK and emoji fonts so their screenshots show
# the Chinese interface and emoji rather than boxes; nginx for tests/test_nginx.py (it
# runs its own nginx from a temp folder, never the system's).
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  missing=""
  [ -x /usr/bin/chromium ] || missing="$missing chromium"
  [ -x /usr/sbin/nginx ] || command -v nginx >/dev/null || missing="$missing nginx"
  dpkg -s fonts-noto-cjk >/dev/null 2>&1 || missing="$missing fonts-noto-cjk"
  dpkg -s fonts-noto-color-emoji >/dev/null 2>&1 || missing="$missing fonts-noto-color-emoji"
  if [ -n "$missing" ]; then
    echo "installing for the tests:$missing"
    apt-get update -qq >/dev/null
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
  fi
fi

# axe-core for the accessibility checks of the browser tests, pinned (browserkit.py
# names the version and installs it on first use too).
axe=$(.venv/bin/python -c 'from tests.browserkit import AXE_VERSION; print(AXE_VERSION)' 2>/dev/null || true)
if [ -n "$axe" ] && command -v npm >/dev/null && \
    ! grep -qs "\"version\": \"$axe\"" tests/.axe/node_modules/axe-core/package.json; then
  npm install --no-save --no-audit --no-fund --prefix tests/.axe "axe-core@$axe" >/dev/null
fi

exec .venv/bin/python -m pytest "$@"
