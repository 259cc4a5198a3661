#!/usr/bin/env bash
# The two set-up commands of README.md:
#   ./run.sh demo [tfrec demo flags]   the main job end to end on embedded defaults
#   ./run.sh test [pytest flags]       the test suite
# Both create (once) and reuse the virtualenv at .venv/ with the pinned stack from setup.py.
set -euo pipefail
cd "$(dirname "$0")"

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
# Re-install when setup.py changed since the last install (or on the first run).
stamp=.venv/.tfrec-installed
if [ ! -f "$stamp" ] || [ setup.py -nt "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[dev]"
  .venv/bin/python -m pip check
  touch "$stamp"
fi
export TF_USE_LEGACY_KERAS=1 TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-3} PYTHONUNBUFFERED=1

cmd=${1:-}
shift || true
case "$cmd" in
  demo) exec .venv/bin/tfrec demo "$@" ;;
  test)
    # The Redis cache tests start their own redis-server on loopback: install Debian's package
    # when it is missing and we may (root, or passwordless sudo).
    if ! command -v redis-server >/dev/null; then
      if [ "$(id -u)" = 0 ]; then SUDO=; elif sudo -n true 2>/dev/null; then SUDO="sudo -n"; else SUDO=none; fi
      if [ "$SUDO" != none ]; then
        echo "run.sh: installing redis-server (Debian) for the Redis cache tests" >&2
        $SUDO apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server >/dev/null
      else
        echo "run.sh: redis-server is missing and cannot be installed here; the Redis tests will fail (apt-get install redis-server)" >&2
      fi
    fi
    exec .venv/bin/python -m pytest -q "$@" ;;
  *) echo "usage: ./run.sh demo|test [args]" >&2; exit 2 ;;
esac
