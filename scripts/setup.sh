#!/usr/bin/env bash
# Set up everything Deck Chat needs on a Debian-like machine: system packages (when root), a virtual
# environment in .venv, and the project with its test extras. Safe to run again; fast when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v soffice >/dev/null 2>&1 || need_apt+=(libreoffice-impress)
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
[ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need_apt+=(fonts-dejavu-core)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing ${need_apt[*]} (apt)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  else
    echo "setup: warning: missing ${need_apt[*]}; install them (Debian: apt-get install ${need_apt[*]})" >&2
  fi
fi

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
if ! .venv/bin/python -c "import torch" >/dev/null 2>&1; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then
    .venv/bin/python -m pip install -q torch          # a GPU machine: the CUDA build
  else
    .venv/bin/python -m pip install -q torch==2.13.0  # no GPU: the CPU build, not several GB of CUDA
  fi
fi
.venv/bin/python -m pip install -q -e ".[test]"
echo "setup: ready (.venv)"
