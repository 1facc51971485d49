#!/usr/bin/env bash
# Prepare a machine for idm: system packages, then the virtualenv in .venv.
#
# Idempotent and quick when nothing changed: apt runs only for packages that are missing, and pip
# only when requirements.txt (or the Python version) changed since the last install (stamp file
# in .venv). Safe to source or run; other scripts run it first. Exports nothing.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# System packages: xmlsec1 signs/verifies SAML (pysaml2); libldap/libsasl headers and a compiler build
# python-ldap; slapd + ldap-utils run throwaway directories in LDAP tests; samba with its AD database
# and VFS modules (samba-dsdb-modules, samba-vfs-modules: only Recommends of samba) provisions a real AD
# domain controller; chromium drives the browser
# tests (Playwright's own browser download is not available); the clients help CI and debugging.
APT_PACKAGES=(
    build-essential pkg-config python3-dev python3-venv
    xmlsec1 libxmlsec1-dev libldap2-dev libsasl2-dev
    slapd ldap-utils
    samba samba-ad-provision samba-dsdb-modules samba-vfs-modules attr
    chromium
    postgresql-client redis-tools
)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    if ! dpkg -s "$pkg" >/dev/null 2>&1; then
        missing+=("$pkg")
    fi
done

if ((${#missing[@]})); then
    echo "setup: installing system packages: ${missing[*]}"
    SUDO=""
    if [[ $(id -u) -ne 0 ]]; then
        SUDO="sudo"
    fi
    # Tests only use the slapd *binary* (each test starts its own server on a free port), so no
    # package may start a system daemon: a temporary policy-rc.d refuses every service start.
    # An existing policy-rc.d (as in containers) is left untouched.
    policy=/usr/sbin/policy-rc.d
    created_policy=0
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
        $SUDO chmod 755 "$policy"
        created_policy=1
    fi
    cleanup_policy() {
        if ((created_policy)); then
            $SUDO rm -f "$policy"
        fi
    }
    trap cleanup_policy EXIT
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 \
        apt-get install -y -qq --no-install-recommends "${missing[@]}"
    cleanup_policy
    created_policy=0
    trap - EXIT
fi

# Python virtualenv.
PYTHON="${PYTHON:-python3}"
if [[ ! -x .venv/bin/python ]]; then
    echo "setup: creating .venv with $("$PYTHON" --version 2>&1)"
    "$PYTHON" -m venv .venv
fi

stamp=.venv/.requirements.sha256
want="$( (sha256sum requirements.txt; .venv/bin/python --version) | sha256sum | cut -d' ' -f1)"
have="$(cat "$stamp" 2>/dev/null || true)"
if [[ "$want" != "$have" ]]; then
    echo "setup: installing Python requirements into .venv"
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -r requirements.txt
    echo "$want" >"$stamp"
fi
