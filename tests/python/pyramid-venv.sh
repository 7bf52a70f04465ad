#!/usr/bin/env bash
# The virtualenv of the Pyramid end-to-end tests (tests/python.rs): Pyramid, waitress and
# PasteDeploy from PyPI, pinned, and the test project tests/python/pyramid_hello (editable).
# .ci/run makes it before the tests; a test that finds it missing makes it the same way.
#
#   tests/python/pyramid-venv.sh [VENV]      # default target/python-tests/pyramid-venv
#
# Does nothing when VENV already imports everything.
set -euo pipefail
cd "$(dirname "$0")/../.."
venv=${1:-target/python-tests/pyramid-venv}
if "$venv/bin/python" -c 'import pyramid, waitress, paste.deploy, pyramid_hello' 2>/dev/null; then
    exit 0
fi
rm -rf "$venv"
python3 -m venv "$venv"
pip=("$venv/bin/python" -m pip install --quiet --disable-pip-version-check)
"${pip[@]}" pyramid==2.1 waitress==3.0.2 PasteDeploy==3.1.0
"${pip[@]}" --editable tests/python/pyramid_hello
