#!/usr/bin/env bash
# Sync demo: a ward, a hub, a USB-style export/import, an HTTP push on loopback.
# Usage: bash docs/sync-demo.sh [WORKDIR]   (needs wardcrf on PATH; age/minisign optional)
set -euo pipefail
W=${1:-$(mktemp -d /tmp/wardcrf-sync-demo.XXXX)}
PORT=${PORT:-8765}
export WARDCRF_USER=admin
echo "== demo ward (WUH01) and hub in $W"
WARDCRF_PASSWORD=demo-password wardcrf demo --data-dir "$W/ward" --no-tui >/dev/null
WARDCRF_PASSWORD=hub-password-1 wardcrf hub init --data-dir "$W/hub" --admin admin >"$W/hub-init.txt"
hub() { WARDCRF_PASSWORD=hub-password-1 wardcrf hub "$1" --data-dir "$W/hub" "${@:2}"; }

echo "== keys: the ward's card is registered at the hub, the hub's card at the ward"
WARDCRF_PASSWORD=demo-password wardcrf device card --data-dir "$W/ward" --out "$W/ward.card"
hub register-device "$W/ward.card"
hub card --out "$W/hub.card" >/dev/null
WARDCRF_PASSWORD=demo-password wardcrf sync set-hub "$W/hub.card" --url "http://127.0.0.1:$PORT" --data-dir "$W/ward"

echo "== USB: export, import at the hub, receipt back"
mkdir -p "$W/usb"
WARDCRF_PASSWORD=demo-password wardcrf sync export --to "$W/usb" --data-dir "$W/ward"
hub import "$W"/usb/*.tar.age --receipts-to "$W/usb"
WARDCRF_PASSWORD=demo-password wardcrf sync import "$W"/usb/*-receipt.json --data-dir "$W/ward"
if command -v age >/dev/null && command -v minisign >/dev/null; then
  echo "== auditor-style check of the bundle's outer signature with Debian minisign"
  minisign -Vm "$(ls "$W"/usb/*.tar.age | head -1)" -P "$(sed -n 's/^minisign-public-key: //p' "$W/ward.card")" -H
fi

echo "== HTTP: hub serve on loopback, new events pushed"
WARDCRF_PASSWORD=hub-password-1 wardcrf hub serve --data-dir "$W/hub" --port "$PORT" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 50); do curl -fs "http://127.0.0.1:$PORT/v1/ping" >/dev/null 2>&1 && break; sleep 0.2; done
WARDCRF_USER=coordinator WARDCRF_PASSWORD=demo-password wardcrf sync add-recipient \
  "$(python3 -c 'import pyrage; print(pyrage.x25519.Identity.generate().to_public())')" --label demo-auditor \
  --data-dir "$W/ward"
WARDCRF_PASSWORD=demo-password wardcrf sync push --data-dir "$W/ward"
WARDCRF_PASSWORD=demo-password wardcrf sync pull --data-dir "$W/ward"
WARDCRF_PASSWORD=demo-password wardcrf sync status --data-dir "$W/ward"
kill $SERVER; wait $SERVER 2>/dev/null || true
hub status
