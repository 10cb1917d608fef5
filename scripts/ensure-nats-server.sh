#!/usr/bin/env sh
# Makes sure a nats-server binary is there (dmcp up and the tests start their own private servers).
# Installs Debian/Ubuntu's package when it is missing; elsewhere says how to get one.
set -eu
if [ -n "${NATS_SERVER_BIN:-}" ] && [ -x "$NATS_SERVER_BIN" ]; then exit 0; fi
if command -v nats-server >/dev/null 2>&1 || [ -x /usr/sbin/nats-server ] || [ -x /usr/bin/nats-server ]; then exit 0; fi
if command -v apt-get >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then sudo=""; elif command -v sudo >/dev/null 2>&1; then sudo="sudo"; else sudo=none; fi
  if [ "$sudo" != none ]; then
    echo "nats-server not found; installing Debian's nats-server package" >&2
    $sudo apt-get update -qq >&2
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nats-server >&2
    exit 0
  fi
fi
echo "nats-server not found. Install it (apt-get install nats-server, brew install nats-server," >&2
echo "or a release from https://github.com/nats-io/nats-server/releases) or set NATS_SERVER_BIN." >&2
exit 1
