#!/usr/bin/env bash
# Install Debian packages the tests need (as root with apt), or say what is missing.
set -euo pipefail
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "missing tools: install the Debian packages $* (apt-get install $*)" >&2
  exit 1
fi
echo "installing $* (Debian packages)..." >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "$@" >/dev/null
