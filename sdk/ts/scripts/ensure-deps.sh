#!/usr/bin/env bash
# Installs what the TypeScript SDK's tests need, and says what to do when it
# cannot: Debian's chromium (the browser test drives it with playwright-core;
# Playwright's own browser downloads are not used) and softhsm2 (lets
# `sigil dev` run an HSM driver, making HSM wallets available to the tests),
# then the npm packages of sdk/ts (npm ci, from package-lock.json).
#
#   scripts/ensure-deps.sh            everything
#   scripts/ensure-deps.sh --system   only the apt packages
#   scripts/ensure-deps.sh --npm      only npm ci
#
# Environment: SIGIL_CHROMIUM overrides the browser path (default
# /usr/bin/chromium). Called by the repository's `make test` and by
# `npm test` (scripts/test.mjs) when chromium is missing.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
chromium="${SIGIL_CHROMIUM:-/usr/bin/chromium}"
want_system=1
want_npm=1
case "${1:-}" in
  --system) want_npm=0 ;;
  --npm) want_system=0 ;;
  "") ;;
  *) echo "usage: $0 [--system|--npm]" >&2; exit 2 ;;
esac

apt_install() {
  # $@: Debian packages to install when missing. Needs root (or passwordless sudo).
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
      sudo="sudo -n"
    else
      return 1
    fi
  fi
  command -v apt-get >/dev/null 2>&1 || return 1
  echo "ensure-deps: installing $* with apt-get" >&2
  $sudo apt-get update -qq >&2 || true
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >&2
}

if [ "$want_system" = 1 ]; then
  if [ ! -x "$chromium" ]; then
    if ! apt_install chromium || [ ! -x "$chromium" ]; then
      cat >&2 <<EOF
ensure-deps: the browser test needs Chromium at $chromium and it could not be installed
  (installing needs root or passwordless sudo, and apt-get).
  Fix one of:
    - as root: apt-get update && apt-get install -y chromium
    - point SIGIL_CHROMIUM at an existing Chromium or Chrome binary
    - skip the browser test: SIGIL_SKIP_BROWSER=1 npm test  (not allowed when CI=true)
EOF
      exit 1
    fi
  fi
  # SoftHSM is optional: without it `sigil dev` runs MPC signers only.
  if ! command -v softhsm2-util >/dev/null 2>&1; then
    apt_install softhsm2 || echo "ensure-deps: softhsm2 not installed (needs root); HSM wallets will not be tested" >&2
  fi
fi

if [ "$want_npm" = 1 ]; then
  if ! command -v npm >/dev/null 2>&1; then
    echo "ensure-deps: npm is missing; install Node.js 20 or later (apt-get install -y nodejs npm)" >&2
    exit 1
  fi
  (cd "$here" && npm ci --no-audit --no-fund --loglevel=error)
fi
