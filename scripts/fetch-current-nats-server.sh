#!/usr/bin/env sh
# Puts a current nats-server (Debian unstable's package, unpacked, not installed) under
# .cache/nats-server-current/, for the tests that compare server versions (durable delivery uses
# per-message TTL and term reasons where the server has them). Prints the binary's path.
# The package comes from the Debian mirror this machine's apt sources name (so a local mirror works),
# or from $DEBIAN_MIRROR (the URI of a Debian archive). Debian and its derivatives only; elsewhere set
# NATS_SERVER_CURRENT_BIN to any nats-server >= 2.11.
set -eu
cd "$(dirname "$0")/.."
dir="$PWD/.cache/nats-server-current"
bin="$dir/root/usr/sbin/nats-server"
if [ -x "$bin" ]; then echo "$bin"; exit 0; fi
command -v apt-get >/dev/null 2>&1 || { echo "apt-get not found: set NATS_SERVER_CURRENT_BIN instead" >&2; exit 1; }

# The Debian archive among the configured sources: label "Debian" (not Debian-Security, not a
# third-party repository), on a main suite (not -updates or -backports). Labels come from the
# downloaded Release files, so this needs a prior `apt-get update`.
debian_mirror() {
  apt-get indextargets --format '$(LABEL) $(RELEASE) $(REPO_URI)' 'Identifier: Packages' 2>/dev/null |
    awk '$1 == "Debian" && $2 !~ /-/ { print $3; exit }'
}
mirror="${DEBIAN_MIRROR:-$(debian_mirror)}"
if [ -z "$mirror" ]; then
  echo "no Debian archive among this machine's apt sources (run apt-get update if they have one)." >&2
  echo "Set DEBIAN_MIRROR to the URI of a Debian mirror, or NATS_SERVER_CURRENT_BIN to a nats-server >= 2.11." >&2
  exit 1
fi

mkdir -p "$dir/lists/partial" "$dir/cache/archives/partial" "$dir/parts"
echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror unstable main" > "$dir/sources.list"
apt_private() {
  apt-get -qq -o Dir::Etc::sourcelist="$dir/sources.list" -o Dir::Etc::sourceparts="$dir/parts" \
    -o Dir::State::Lists="$dir/lists" -o Dir::Cache="$dir/cache" -o APT::Sandbox::User=root "$@"
}
apt_private update >&2
(cd "$dir" && apt_private download nats-server >&2)
dpkg-deb -x "$(ls "$dir"/nats-server_*.deb | tail -1)" "$dir/root"
echo "$bin"
