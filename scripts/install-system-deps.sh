#!/usr/bin/env bash
# Installs what the sandbox needs from Debian's packages when it is missing: Java 17+, Maven, redis-server.
# Says in one sentence what is wrong when it cannot.
set -euo pipefail

need=()
java_major() { java -version 2>&1 | sed -nE 's/.*version "([0-9]+).*/\1/p' | head -1; }
if ! command -v java >/dev/null || [ "$(java_major)" -lt 17 ]; then need+=(openjdk-17-jdk-headless); fi
command -v mvn >/dev/null || need+=(maven)
command -v redis-server >/dev/null || need+=(redis-server)
# headless Chromium and its driver for the collector's browser test (tests/e2e); Selenium never downloads one
command -v chromium >/dev/null || need+=(chromium)
command -v chromedriver >/dev/null || need+=(chromium-driver)

if [ ${#need[@]} -eq 0 ]; then
  echo "system packages: Java $(java_major), Maven, redis-server and Chromium are present"
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  echo "error: missing ${need[*]} and this is not a Debian/Ubuntu machine; install them (Java 17+, Maven, Redis) and run make again." >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null; then SUDO="sudo"; else
    echo "error: missing ${need[*]}; run 'apt-get install -y ${need[*]}' as root, then make again." >&2
    exit 1
  fi
fi
echo "installing ${need[*]} with apt-get"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
