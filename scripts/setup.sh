#!/usr/bin/env bash
# Everything a fresh Debian machine needs to run d2box and its tests:
# Debian packages (BIND 9 and Kea's D2 are the real peers the tests talk to), then npm packages.
set -euo pipefail
cd "$(dirname "$0")/.."
PACKAGES=(bind9 bind9-utils dnsutils kea-dhcp-ddns-server kea-dhcp4-server kea-ctrl-agent bubblewrap)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # The packages start system services; d2box's tests run their own on loopback high ports.
  for svc in named bind9 kea-dhcp-ddns-server kea-dhcp4-server kea-ctrl-agent; do
    $SUDO systemctl stop "$svc" >/dev/null 2>&1 || true
  done
fi
npm ci --no-audit --no-fund
npm run build
