#!/usr/bin/env sh
# Installs Debian/Ubuntu's package $1 (as root, or through sudo) and exits 0; exits 1 where there is
# no apt-get or no way to become root. The ensure-*.sh scripts use it for what the project needs.
set -eu
package="$1"
command -v apt-get >/dev/null 2>&1 || exit 1
if [ "$(id -u)" = 0 ]; then sudo=""; elif command -v sudo >/dev/null 2>&1; then sudo="sudo"; else exit 1; fi
echo "$package not found; installing Debian's $package package" >&2
$sudo apt-get update -qq >&2
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$package" >&2
