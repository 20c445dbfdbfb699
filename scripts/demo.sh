#!/usr/bin/env bash
# Run the chat example (examples/chat) with the in-memory broadcaster:
#   bash scripts/demo.sh                 # http://127.0.0.1:6543/
#   bash scripts/demo.sh http_port=8080  # any pserve config_vars
# Two workers sharing rooms through Redis (start redis-server first):
#   bash scripts/demo.sh workers=2 broadcast_url=redis://127.0.0.1:6379/0
# The cookbook recipe's echo page, rewritten with the add-on, on uvicorn:
#   bash scripts/demo.sh echo            # http://127.0.0.1:8000/
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"

bash scripts/setup.sh

if [ "${1:-}" = echo ]; then
    echo
    echo "Echo demo: open http://127.0.0.1:8000/ (Ctrl-C stops it)."
    echo
    cd examples/recipe
    exec "$PYTHON" -m uvicorn echo:app --host 127.0.0.1 --port 8000
fi

port=6543
for arg in "$@"; do
    case "$arg" in http_port=*) port="${arg#http_port=}" ;; esac
done
echo
echo "Chat demo: open http://127.0.0.1:${port}/ in two browser windows."
echo "Stop it with Ctrl-C."
echo
exec "$PYTHON" -m pyramid.scripts.pserve examples/chat/development.ini "$@"
