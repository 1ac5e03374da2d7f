#!/usr/bin/env bash
# Make sure Debian's Chromium is at /usr/bin/chromium for the browser tests.
# Present: say so and exit 0. Missing and root: install it with apt-get. Missing and not
# root: say what to run and exit 1. Never downloads a browser any other way (no
# `playwright install`).
set -euo pipefail

CHROMIUM=/usr/bin/chromium

if [ -x "$CHROMIUM" ]; then
  echo "ensure-chromium: $CHROMIUM is present ($("$CHROMIUM" --version 2>/dev/null || echo 'version unknown'))"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "ensure-chromium: $CHROMIUM is missing and this is not root." >&2
  echo "ensure-chromium: install it with: sudo apt-get install --no-install-recommends chromium fonts-dejavu-core" >&2
  exit 1
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure-chromium: $CHROMIUM is missing and apt-get is not available; install Chromium at $CHROMIUM by hand." >&2
  exit 1
fi

echo "ensure-chromium: $CHROMIUM is missing; installing Debian's chromium with apt-get"
export DEBIAN_FRONTEND=noninteractive
echo "ensure-chromium: apt-get update"
apt-get update -qq
echo "ensure-chromium: apt-get install chromium fonts-dejavu-core"
apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null

if [ ! -x "$CHROMIUM" ]; then
  echo "ensure-chromium: apt-get finished but $CHROMIUM is still missing" >&2
  exit 1
fi
echo "ensure-chromium: installed $("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM")"
