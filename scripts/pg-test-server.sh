#!/usr/bin/env bash
# A throwaway PostgreSQL server for the hub's tests, on a free loopback port, its data in
# DIR (made if missing). PostgreSQL refuses to run as root: as root it runs as the
# `postgres` user Debian's package creates.
#
#   scripts/pg-test-server.sh start DIR    prints the URL to export as LOYALTYD_TEST_PG
#   scripts/pg-test-server.sh stop DIR
#   scripts/pg-test-server.sh restart DIR  (the fault tests: the database goes away and back)
#
# For a developer:  export LOYALTYD_TEST_PG=$(scripts/pg-test-server.sh start /tmp/pg)
#
# With the openssl command line the server also speaks TLS (ssl=on), with a certificate
# for 127.0.0.1 and localhost from scripts/make-hub-cert.sh: its CA is DIR/tls/ca.pem
# (tests/hub_pg_tls.rs). Clear-text connections are accepted as before.
# Needs Debian's `postgresql` package (apt-get install postgresql).
set -euo pipefail

cmd=${1:?usage: $0 start|stop|restart DIR}
dir=${2:?usage: $0 start|stop|restart DIR}

bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -n "$bin" ] || { echo "PostgreSQL is not installed (apt-get install postgresql)" >&2; exit 1; }

as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

data="$dir/data"
# The server's options once $port is known; TLS too if DIR has its certificate.
opts() {
  local tls=""
  [ -f "$dir/tls/hub.key" ] && tls=" -c ssl=on -c ssl_cert_file=$dir/tls/hub.pem -c ssl_key_file=$dir/tls/hub.key"
  echo "-p $port -c listen_addresses=127.0.0.1 -k $dir -c max_connections=300$tls"
}
case "$cmd" in
  start)
    mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown postgres: "$dir"
    if [ ! -f "$data/PG_VERSION" ]; then
      as_owner "$bin/initdb" -D "$data" -U loyaltyd -A trust --no-sync -E UTF8 >"$dir/initdb.log" 2>&1 ||
        { cat "$dir/initdb.log" >&2; exit 1; }
    fi
    if [ ! -f "$dir/tls/hub.key" ] && command -v openssl >/dev/null; then
      bash "$(dirname "$0")/make-hub-cert.sh" "$dir/tls" 127.0.0.1 localhost >/dev/null
      # The server reads its key as its own user, mode 0600.
      [ "$(id -u)" = 0 ] && chown -R postgres: "$dir/tls"
    fi
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    echo "$port" >"$dir/port"
    [ "$(id -u)" = 0 ] && chown postgres: "$dir/port"
    # Many test databases and hubs at once; the socket directory is the data's own.
    as_owner "$bin/pg_ctl" -D "$data" -l "$dir/server.log" -w -t 60 \
      -o "$(opts)" start >/dev/null ||
      { cat "$dir/server.log" >&2; exit 1; }
    echo "postgres://loyaltyd@127.0.0.1:$port/postgres"
    ;;
  restart)
    port=$(cat "$dir/port")
    as_owner "$bin/pg_ctl" -D "$data" -m fast -w -t 60 \
      -o "$(opts)" restart >/dev/null
    ;;
  stop)
    [ -f "$data/postmaster.pid" ] && as_owner "$bin/pg_ctl" -D "$data" -m fast -w stop >/dev/null
    ;;
  *)
    echo "usage: $0 start|stop|restart DIR" >&2
    exit 2
    ;;
esac
