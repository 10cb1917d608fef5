#!/usr/bin/env sh
# Makes sure HAProxy is there for the test of deploy/cluster (its load balancer, test/e2e/deploy.long.test.ts).
# Installs Debian/Ubuntu's haproxy package when it is missing; elsewhere says how to get one.
set -eu
if command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ]; then exit 0; fi
sh "$(dirname "$0")/apt-install.sh" haproxy && exit 0
echo "haproxy not found. Install it (apt-get install haproxy, brew install haproxy)." >&2
exit 1
