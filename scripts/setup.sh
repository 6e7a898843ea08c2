#!/usr/bin/env bash
# Installs the Debian packages the project needs; does nothing when they are there.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git
  libpqxx-dev nlohmann-json3-dev libcurl4-openssl-dev libboost-dev libssl-dev
  googletest libgtest-dev libgmock-dev libbenchmark-dev
  postgresql postgresql-client
  clang libclang-rt-14-dev clang-tidy lld
  libcli11-dev libhowardhinnant-date-dev
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} == 0)); then
  echo "setup: all ${#packages[@]} packages present"
  exit 0
fi

echo "setup: installing ${missing[*]}"
sudo_cmd=()
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || { echo "setup: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  sudo_cmd=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
