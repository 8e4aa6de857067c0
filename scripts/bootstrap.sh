#!/usr/bin/env bash
# Installs everything kubedask's demo and tests need on a fresh Debian machine, idempotently:
# Debian packages for the local cluster's node, and a Python virtualenv cached outside the repo, keyed
# by the project's dependency lists. Prints the virtualenv's python path on the last line.
#
# The virtualenv uses Debian's python3 on purpose: the local cluster's Dask image is built from the same
# Debian release, so client, scheduler and workers run the very same Python (no version-mismatch warning).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cache="${KUBEDASK_CACHE:-$HOME/.cache/kubedask}"
mkdir -p "$cache"

apt_packages=(python3 python3-venv containerd runc containernetworking-plugins iptables conntrack debootstrap iproute2 docker.io openssl)
missing=()
for p in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "bootstrap: installing Debian packages: ${missing[*]}" >&2
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

python=/usr/bin/python3
key="$("$python" - "$here/pyproject.toml" <<'PY' | sha256sum | cut -c1-12
import sys, tomllib, platform
project = tomllib.load(open(sys.argv[1], "rb"))["project"]
print(platform.python_version(), project["dependencies"], project["optional-dependencies"])
PY
)"
venv="$cache/venv-$key"
if [[ ! -x "$venv/bin/python" || ! -f "$venv/.complete" ]]; then
  echo "bootstrap: creating Python environment $venv" >&2
  rm -rf "$venv"
  "$python" -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip >&2
  # Install the dependencies only; the project itself runs from the work tree (see pytest pythonpath).
  "$venv/bin/pip" install -q -e "$here[controller,test]" >&2
  "$venv/bin/pip" uninstall -q -y kubedask >&2
  touch "$venv/.complete"
fi
echo "$venv/bin/python"
