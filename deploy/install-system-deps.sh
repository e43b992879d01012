#!/usr/bin/env bash
# System packages, installed with apt-get when missing (Debian/Ubuntu);
# elsewhere it says what to install and fails.
#
#   install-system-deps.sh kafka   what the local broker needs (make demo,
#                                  make worker, make kafka-start): Java 17+, and
#                                  Maven only until the Kafka jars are fetched into
#                                  deploy/kafka/lib; nothing when KAFKA_BOOTSTRAP_SERVERS
#                                  names a broker of your own
#   install-system-deps.sh [all]   the tests (make test, .ci/run): Java, Maven,
#                                  Prometheus' promtool and server (the metrics tests),
#                                  and headless Chromium with its WebDriver (the web
#                                  console's browser tests: chromium, chromium-driver)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
scope="${1:-all}"
missing=()
case "$scope" in
  kafka)
    if [[ -z "${KAFKA_BOOTSTRAP_SERVERS:-}" ]]; then
      command -v java >/dev/null || missing+=(openjdk-17-jre-headless)
      [[ -f "$HERE/kafka/lib/.complete" ]] || command -v mvn >/dev/null || missing+=(maven)
    fi
    ;;
  all)
    command -v java >/dev/null || missing+=(openjdk-17-jre-headless)
    command -v mvn >/dev/null || missing+=(maven)
    { command -v promtool >/dev/null && command -v prometheus >/dev/null; } \
      || missing+=(prometheus)
    { command -v chromium >/dev/null && command -v chromedriver >/dev/null; } \
      || missing+=(chromium chromium-driver)
    ;;
  *)
    echo "usage: $0 [kafka|all]" >&2
    exit 2
    ;;
esac
[[ ${#missing[@]} -eq 0 ]] && exit 0
if command -v apt-get >/dev/null; then
  SUDO=""
  [[ $(id -u) -eq 0 ]] || SUDO="sudo"
  echo "installing: ${missing[*]}" >&2
  $SUDO apt-get update -q
  # No recommended packages: prometheus alone would pull node-exporter,
  # smartmontools, ipmitool and more that nothing here uses.
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends \
    "${missing[@]}"
else
  echo "please install: ${missing[*]} (Java 17+, Maven, Prometheus with promtool," \
    "Chromium with chromedriver)" >&2
  exit 1
fi
