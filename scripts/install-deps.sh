#!/usr/bin/env bash
# Installs what the test suite runs against (real sshd, network namespaces, iptables NAT, curl, nc,
# ansible, chromium, postgresql, kubectl, and zsh and fish for the completion scripts) on Debian 12 that has only Node 20/npm, python3, make and g++.
# Idempotent: installs only what is missing. Run as root: sudo bash scripts/install-deps.sh
set -euo pipefail

if [[ $(id -u) -ne 0 ]]; then
  echo "install-deps: must run as root (sudo bash scripts/install-deps.sh)" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
packages=(openssh-server openssh-client iproute2 iptables curl netcat-openbsd ansible chromium postgresql
  procps psmisc ca-certificates zsh fish)

# Debian's kubernetes-client conflicts with a kubectl from another package (some images ship 1.32 from
# google-cloud-sdk); any kubectl on PATH will do.
if command -v kubectl >/dev/null 2>&1; then
  echo "install-deps: kubectl found at $(command -v kubectl), not installing kubernetes-client"
else
  packages+=(kubernetes-client)
fi

missing=()
for pkg in "${packages[@]}"; do
  # db:Status-Abbrev is "ii " only for a fully installed package ("un"/"rc" are known but absent).
  if [[ $(dpkg-query -W -f='${db:Status-Abbrev}' "$pkg" 2>/dev/null) != "ii "* ]]; then
    missing+=("$pkg")
  fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "install-deps: all packages present: ${packages[*]}"
else
  echo "install-deps: apt-get update"
  apt-get update -qq
  echo "install-deps: installing ${missing[*]}"
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# sshd's privilege-separation directory; tmpfs /run loses it on reboot and containers never have it.
mkdir -p /run/sshd
echo "install-deps: done"
