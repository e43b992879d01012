#!/usr/bin/env bash
# System packages the tests and the local broker need: Java 17+ and Maven
# (Kafka from the official jars) and Prometheus' promtool and server (the
# metrics tests). Installs what is missing with apt-get (Debian/Ubuntu);
# elsewhere it says what to install and fails.
set -euo pipefail
missing=()
command -v java >/dev/null || missing+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || missing+=(maven)
{ command -v promtool >/dev/null && command -v prometheus >/dev/null; } || missing+=(prometheus)
[[ ${#missing[@]} -eq 0 ]] && exit 0
if command -v apt-get >/dev/null; then
  SUDO=""
  [[ $(id -u) -eq 0 ]] || SUDO="sudo"
  echo "installing: ${missing[*]}" >&2
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${missing[@]}"
else
  echo "please install: ${missing[*]} (Java 17+, Maven, Prometheus with promtool)" >&2
  exit 1
fi
