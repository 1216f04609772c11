#!/usr/bin/env bash
# Installs the system packages a fresh machine lacks (it has the Rust toolchain and gcc only).
# The bundled libopus is built by cmake; protoc comes from a crate, so no package is needed for it.
# The ng tests' independent clients (issue 14) are Debian packages too: rtpengine-utils
# (rtpengine-ng-client and the Perl NGCP::Rtpengine::AutoTest harness run by prove) plus the five
# Perl modules it needs but does not declare, Kamailio 5.6 (its rtpengine module) and SIPp.
set -euo pipefail
need=()
command -v cmake >/dev/null 2>&1 || need+=(cmake)
command -v make >/dev/null 2>&1 || need+=(make)
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
command -v prove >/dev/null 2>&1 || need+=(perl)
command -v rtpengine-ng-client >/dev/null 2>&1 || need+=(rtpengine-utils)
command -v kamailio >/dev/null 2>&1 || need+=(kamailio)
command -v sipp >/dev/null 2>&1 || need+=(sip-tester)
# Declared by rtpengine-utils, and the five undeclared ones (docs: shared notes §3).
for pkg in libbencode-perl libconfig-tiny-perl libcrypt-rijndael-perl libdigest-hmac-perl \
  libio-socket-inet6-perl libsocket6-perl libjson-perl libnet-interface-perl \
  libio-multiplex-perl libcrypt-openssl-rsa-perl libdigest-crc-perl; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "setup: installing ${need[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
