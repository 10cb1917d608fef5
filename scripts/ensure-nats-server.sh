#!/usr/bin/env sh
# Makes sure a nats-server binary is there (dmcp up and the tests start their own private servers).
# Installs Debian/Ubuntu's package when it is missing; elsewhere says how to get one.
set -eu
if [ -n "${NATS_SERVER_BIN:-}" ] && [ -x "$NATS_SERVER_BIN" ]; then exit 0; fi
if command -v nats-server >/dev/null 2>&1 || [ -x /usr/sbin/nats-server ] || [ -x /usr/bin/nats-server ]; then exit 0; fi
sh "$(dirname "$0")/apt-install.sh" nats-server && exit 0
echo "nats-server not found. Install it (apt-get install nats-server, brew install nats-server," >&2
echo "or a release from https://github.com/nats-io/nats-server/releases) or set NATS_SERVER_BIN." >&2
exit 1
