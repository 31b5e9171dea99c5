#!/usr/bin/env bash
# System packages `make test` needs beyond Python, installed from Debian/Ubuntu's archive when missing:
#   chromium (+ a font)  the report's browser test renders the HTML report headless (tests/test_report_browser.py)
#   java (headless JRE)   METEOR 1.5 and the PTB tokenizer are Java programs (the metric parity tests)
# Idempotent: installs nothing when both are already on PATH. Without apt-get, or without root/sudo,
# it names what is missing and how to install it, and exits 1.
set -euo pipefail
need=()
command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || need+=(chromium fonts-dejavu-core)
command -v java >/dev/null 2>&1 || need+=(default-jre-headless)
if [ ${#need[@]} -eq 0 ]; then
    echo "install_system_packages: chromium $(command -v chromium || command -v chromium-browser), java $(command -v java)"
    exit 0
fi
fail() {
    echo "install_system_packages: missing ${need[*]} ($1)." >&2
    echo "  Install them (Debian/Ubuntu: apt-get install ${need[*]}), or put chromium and java on PATH, then rerun." >&2
    exit 1
}
command -v apt-get >/dev/null 2>&1 || fail "no apt-get on this machine"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || fail "not root and no sudo"
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
echo "install_system_packages: apt-get install ${need[*]}"
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || fail "apt-get did not provide chromium"
command -v java >/dev/null 2>&1 || fail "apt-get did not provide java"
