#!/usr/bin/env bash
# Everything a fresh Debian machine needs to run d2box and its tests:
# Debian packages (BIND 9 and Kea's D2 are the real peers the tests talk to), then npm packages.
set -euo pipefail
cd "$(dirname "$0")/.."
PACKAGES=(bind9 bind9-utils dnsutils kea-dhcp-ddns-server kea-dhcp4-server kea-ctrl-agent kea-admin iproute2 bubblewrap socat chromium kea-doc)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  # The packages would start system services (a named on port 53, a kea-dhcp-ddns on
  # 53001); d2box's tests run their own on loopback high ports. policy-rc.d keeps
  # invoke-rc.d from starting them during the install; systemctl stops any that did.
  added_policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod +x /usr/sbin/policy-rc.d
    added_policy=1
  fi
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  [ -n "$added_policy" ] && $SUDO rm -f /usr/sbin/policy-rc.d
  for svc in named bind9 kea-dhcp-ddns-server kea-dhcp4-server kea-ctrl-agent; do
    $SUDO systemctl stop "$svc" >/dev/null 2>&1 || true
  done
fi
npm ci --no-audit --no-fund
npm run build
