#!/usr/bin/env bash
# Installs the Debian packages Quantscope needs to build, test and run, skipping those already present.
# Uses sudo when not root. Nothing else is downloaded.
set -euo pipefail

packages=(
    cmake ninja-build g++ make ccache pkg-config
    qt6-base-dev qt6-tools-dev qt6-svg-dev libqcustomplot-dev libgl-dev
    libeigen3-dev libhdf5-dev libre2-dev libpcre2-dev
    xvfb xauth
)
if [[ "${1:-}" == "--fuzz" ]]; then
    packages+=(clang libclang-rt-dev)
fi

missing=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done
if [[ ${#missing[@]} -eq 0 ]]; then
    exit 0
fi

echo "Installing missing packages: ${missing[*]}"
sudo=()
if [[ $(id -u) -ne 0 ]]; then
    if ! command -v sudo >/dev/null; then
        echo "error: need root or sudo to install: ${missing[*]}" >&2
        exit 1
    fi
    sudo=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
