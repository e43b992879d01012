#!/usr/bin/env bash
# System packages, installed with apt-get when missing (Debian/Ubuntu);
# elsewhere it says what to install and fails.
#
#   install-system-deps.sh kafka   what the local broker needs (make demo,
#                                  make worker, make kafka-start): Java 17+, and
#                                  Maven only until the Kafka jars are fetched into
#                                  deploy/kafka/lib; nothing when KAFKA_BOOTSTRAP_SERVERS
#                                  names a broker of your own
#   install-system-deps.sh node    Node.js and npm, for the AsyncAPI validator
#                                  (tools/asyncapi: make asyncapi-check, lint, test)
#   install-system-deps.sh [all]   the tests (make test, .ci/run): Java, Maven,
#                                  Prometheus' promtool and server (the metrics tests),
#                                  headless Chromium with its WebDriver (the web
#                                  console's browser tests: chromium, chromium-driver),
#                                  and Node.js with npm (the AsyncAPI validator)
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
scope="${1:-all}"
missing=()
# Debian 12's Node.js is 18: tools/asyncapi's lock is kept installable on 18.18+.
need_node() {
  command -v node >/dev/null || missing+=(nodejs)
  command -v npm >/dev/null || missing+=(npm)
}
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
    need_node
    ;;
  node)
    need_node
    ;;
  *)
    echo "usage: $0 [kafka|node|all]" >&2
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
    "Chromium with chromedriver, Node.js 18.18+ with npm)" >&2
  exit 1
fi
