#!/usr/bin/env bash
# Install Debian's headless-capable Chromium for the report's browser test (tests/test_report_*.py).
# Idempotent: does nothing when a chromium binary is already on PATH.
set -euo pipefail
for exe in chromium chromium-browser; do
    if command -v "$exe" >/dev/null 2>&1; then
        echo "chromium present: $(command -v "$exe")"
        exit 0
    fi
done
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
        echo "install_chromium.sh: not root and no sudo; install the 'chromium' package yourself" >&2
        exit 1
    fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core
command -v chromium
