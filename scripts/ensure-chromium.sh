#!/usr/bin/env sh
# Makes sure a Chromium binary is there for the browser tests (npm run test:browser).
# Installs Debian/Ubuntu's chromium package when it is missing; elsewhere says how to get one.
# playwright-core drives it; it never downloads a browser of its own.
set -eu
if [ -n "${CHROMIUM_BIN:-}" ] && [ -x "$CHROMIUM_BIN" ]; then exit 0; fi
if [ -x /usr/bin/chromium ]; then exit 0; fi
sh "$(dirname "$0")/apt-install.sh" chromium && exit 0
echo "chromium not found. Install it (apt-get install chromium) or set CHROMIUM_BIN to a Chromium" >&2
echo "or Chrome binary." >&2
exit 1
