#!/usr/bin/env bash
# Install Debian packages the tests need (as root with apt), or say what is missing.
# Installs every package the configured apt sources have, then fails naming those they lack.
set -euo pipefail
[ "$#" = 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "missing tools: install the Debian packages $* (apt-get install $*)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
available=() unavailable=()
for package in "$@"; do
  candidate="$(apt-cache policy "$package" 2>/dev/null | awk '/Candidate:/ {print $2}')"
  if [ -n "$candidate" ] && [ "$candidate" != "(none)" ]; then
    available+=("$package")
  else
    unavailable+=("$package")
  fi
done
if [ "${#available[@]}" != 0 ]; then
  echo "installing ${available[*]} (Debian packages)..." >&2
  apt-get install -y -qq --no-install-recommends "${available[@]}" >/dev/null
fi
for package in "${unavailable[@]}"; do
  echo "cannot install $package: no apt source configured here has it" >&2
done
[ "${#unavailable[@]}" = 0 ]
