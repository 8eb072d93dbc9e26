#!/usr/bin/env bash
# Writes throwaway certificates for trying the TLS examples into examples/certs/ (ignored by
# git): a server CA with a certificate for localhost, and a client CA with certificates for
# the consumers of examples/mtls.yaml. Valid for 30 days; run again to renew.
#   scripts/dev-certs.sh [folder]
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-examples/certs}"
mkdir -p "$out"
cd "$out"
ec=(-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes)
ca() { # name subject
  openssl req -x509 "${ec[@]}" -subj "/CN=$2" -days 30 -keyout "$1.key" -out "$1.pem" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
}
leaf() { # ca name subject usage san
  printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=%s\n%s\n' "$4" "${5:+subjectAltName=$5}" > "$2.ext"
  openssl req -new "${ec[@]}" -subj "$3" -keyout "$2.key" -out "$2.csr" 2>/dev/null
  openssl x509 -req -in "$2.csr" -CA "$1.pem" -CAkey "$1.key" -set_serial "0x$(openssl rand -hex 8)" -days 30 -extfile "$2.ext" -out "$2.pem" 2>/dev/null
  rm -f "$2.csr" "$2.ext"
}
ca server-ca "Turnpike example server CA"
ca client-ca "Turnpike example client CA"
leaf server-ca server "/CN=localhost" serverAuth "DNS:localhost,IP:127.0.0.1"
leaf client-ca alice "/CN=alice/O=Example" clientAuth ""
leaf client-ca billing "/CN=billing-service" clientAuth "URI:spiffe://example.test/billing"
chmod 600 ./*.key
echo "certificates written to $(pwd)"
