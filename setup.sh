#!/usr/bin/env bash
# Set up everything the kiosk needs on a Debian or Raspberry Pi OS machine, idempotently:
# Debian packages (as root; otherwise says which to install), a virtualenv in .venv, and the
# kiosk with its dev tools installed into it. Used by `make demo` and `make test`.
set -euo pipefail
cd "$(dirname "$0")"

VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
DEBS=(fonts-noto-cjk libzbar0)   # Korean glyphs for the UI (Noto Sans CJK); zbar, for pyzbar (camera)

say() { printf 'setup: %s\n' "$*"; }

if ! command -v "$PYTHON" >/dev/null; then
    say "no $PYTHON found: install Python 3.11 or newer (Debian: apt-get install python3 python3-venv)"; exit 1
fi
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    say "Python 3.11 or newer is needed, found $("$PYTHON" --version 2>&1)"; exit 1
fi
if ! "$PYTHON" -c 'import venv, ensurepip' 2>/dev/null; then DEBS+=(python3-venv); fi
# A C compiler and Python's headers: RPi.GPIO, spidev and evdev (the card reader tests' libraries)
# are built from source on x86.
DEBS+=(gcc python3-dev)

missing=()
if command -v dpkg-query >/dev/null; then
    for pkg in "${DEBS[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
fi
if ((${#missing[@]})); then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        say "installing Debian packages: ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    else
        say "missing Debian packages: ${missing[*]}"
        say "install them with:  sudo apt-get install ${missing[*]}   (then run this again)"
        exit 1
    fi
fi

if [ ! -x "$VENV/bin/python" ]; then
    say "creating the virtualenv $VENV"
    "$PYTHON" -m venv "$VENV"
fi
stamp="$VENV/.installed"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    say "installing the kiosk and its dev tools into $VENV"
    log="$VENV/pip.log"
    if ! { "$VENV/bin/python" -m pip install --upgrade pip &&
           "$VENV/bin/python" -m pip install -e ".[dev]"; } >"$log" 2>&1; then
        tail -n 30 "$log"; say "pip install failed (full log: $log)"; exit 1
    fi
    touch "$stamp"
fi
