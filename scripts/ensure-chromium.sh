#!/usr/bin/env sh
# Makes sure a Chromium binary is there for the browser tests (npm run test:browser).
# Installs Debian/Ubuntu's chromium package when it is missing; elsewhere says how to get one.
# playwright-core drives it; it never downloads a browser of its own.
set -eu
if [ -n "${CHROMIUM_BIN:-}" ] && [ -x "$CHROMIUM_BIN" ]; then exit 0; fi
if [ -x /usr/bin/chromium ]; then exit 0; fi
if command -v apt-get >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then sudo=""; elif command -v sudo >/dev/null 2>&1; then sudo="sudo"; else sudo=none; fi
  if [ "$sudo" != none ]; then
    echo "chromium not found; installing Debian's chromium package" >&2
    $sudo apt-get update -qq >&2
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >&2
    exit 0
  fi
fi
echo "chromium not found. Install it (apt-get install chromium) or set CHROMIUM_BIN to a Chromium" >&2
echo "or Chrome binary." >&2
exit 1
