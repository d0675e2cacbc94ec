#!/usr/bin/env bash
# Makes the chain's own certificate authority (once) and a certificate for the hub,
# with the openssl command line. README.md, "Transport", shows the same commands.
#
#   scripts/make-hub-cert.sh DIR NAME...
#
# DIR gets (the CA only if DIR has none yet):
#   ca.pem   the CA certificate: give it to every terminal as sync.ca_file
#   ca.key   the CA's private key: keep it offline, it signs hub certificates
#   hub.pem  the hub's certificate (leaf, then the CA): the hub's [tls] cert_file
#   hub.key  the hub's private key: the hub's [tls] key_file, readable by the hub only
# NAME: each DNS name or IP address terminals put in sync.upstream, e.g. hub.example
# or 203.0.113.7. The first one is also the certificate's common name.
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 DIR NAME..." >&2; exit 2; }
dir=$1
shift
mkdir -p "$dir"
cd "$dir"
umask 077

if [ ! -e ca.key ]; then
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
        -subj "/CN=loyaltyd chain CA" -keyout ca.key -out ca.pem \
        -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
fi

san=""
for name in "$@"; do
    if [[ $name =~ ^[0-9.]+$ || $name == *:* ]]; then san+="${san:+,}IP:$name"; else san+="${san:+,}DNS:$name"; fi
done
cat >hub.ext <<EOF
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=$san
EOF
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -subj "/CN=$1" -keyout hub.key -out hub.csr 2>/dev/null
openssl x509 -req -in hub.csr -CA ca.pem -CAkey ca.key -CAcreateserial -CAserial ca.srl \
    -days 825 -extfile hub.ext -out hub.leaf.pem 2>/dev/null
cat hub.leaf.pem ca.pem >hub.pem
rm -f hub.csr hub.ext hub.leaf.pem
chmod 644 ca.pem hub.pem
echo "$dir: ca.pem (terminals' sync.ca_file), hub.pem and hub.key (the hub's [tls]) for $san"
