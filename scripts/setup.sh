#!/usr/bin/env bash
# Install everything the demo and the test suite need, on a fresh Debian
# machine (run as root, or with sudo available). Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

need=""
command -v redis-server >/dev/null || need="$need redis-server"
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need="$need nginx"
command -v chromium >/dev/null || need="$need chromium"
command -v wrk >/dev/null || need="$need wrk"
if [ -n "$need" ]; then
    echo "setup: installing Debian packages:$need"
    $SUDO apt-get update -q
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q $need
fi

PYTHON="${PYTHON:-python3}"
PIP_ROOT_USER_ACTION=ignore "$PYTHON" -m pip install -q \
    --disable-pip-version-check \
    -e '.[testing,docs]' -e examples/chat -e examples/notes
"$PYTHON" -c 'import pyramid_asgi_ws, uvicorn, hypercorn, daphne, websockets, \
    granian, gunicorn, uvicorn_worker, pyramid_tm, transaction, \
    zope.sqlalchemy, sqlalchemy, redis, playwright, prometheus_client, \
    greenlet, hypothesis, httpx, starlette, pyramid_jinja2, chat, notes, \
    webtest, requests, waitress, a2wsgi, paste.deploy, plaster_pastedeploy, \
    pytest, pytest_timeout, coverage, ruff, mypy, sphinx, pylons_sphinx_themes'
