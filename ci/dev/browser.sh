#!/usr/bin/env bash
# Debian's Chromium for the browser tests (Playwright drives it; its own browser download needs the internet).
set -euo pipefail
command -v chromium >/dev/null && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "chromium is missing and we are not root: install Debian's 'chromium' package to run browser tests" >&2
  exit 0
fi
echo "installing Debian's chromium for the browser tests" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
apt-get install -y -qq --no-install-recommends chromium >&2
