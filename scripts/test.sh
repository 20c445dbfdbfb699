#!/usr/bin/env bash
# The whole test suite: setup, lint, type checks, tests with coverage,
# the docs build (warnings are errors) and a benchmark smoke run.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"

bash scripts/setup.sh

echo '== ruff'
"$PYTHON" -m ruff check pyramid_asgi_ws tests bench examples docs
echo '== mypy'
"$PYTHON" -m mypy
echo '== pytest'
rm -f .coverage .coverage.*
"$PYTHON" -m coverage run -m pytest -p no:cacheprovider "$@"
"$PYTHON" -m coverage combine -q
"$PYTHON" -m coverage report --fail-under=100
echo '== docs'
"$PYTHON" -m sphinx -W -q -b html docs docs/_build/html
echo '== bench (smoke)'
"$PYTHON" -m bench --smoke
