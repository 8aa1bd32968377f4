#!/usr/bin/env bash
# PostgreSQL, Redis and RabbitMQ on 127.0.0.1 for the scale-out tests (`pytest -m scale`): each one whose port is
# closed is installed from Debian packages (apt-get) and started. Run as root (or with sudo). Idempotent.
set -euo pipefail

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
need_install=()
port_open 5432 || command -v pg_ctlcluster >/dev/null || need_install+=(postgresql)
port_open 6379 || command -v redis-server >/dev/null || need_install+=(redis-server)
port_open 5672 || command -v rabbitmq-server >/dev/null || need_install+=(rabbitmq-server)
if [ ${#need_install[@]} -gt 0 ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_install[@]}"
fi

wait_port() {
  for _ in $(seq 1 120); do port_open "$1" && return 0; sleep 0.5; done
  echo "services.sh: $2 did not open 127.0.0.1:$1" >&2; return 1
}

if ! port_open 5432; then
  version=$(ls /etc/postgresql | sort -V | tail -1)
  $SUDO pg_ctlcluster --skip-systemctl-redirect "$version" main start
  wait_port 5432 PostgreSQL
fi
# The tests connect as postgres over TCP without a password (a throwaway database per session): trust on loopback.
hba=$(ls /etc/postgresql/*/main/pg_hba.conf | sort -V | tail -1)
if ! $SUDO grep -qE '^host\s+all\s+all\s+127\.0\.0\.1/32\s+trust' "$hba"; then
  $SUDO sed -i '1i host all all 127.0.0.1/32 trust' "$hba"
  $SUDO pg_ctlcluster --skip-systemctl-redirect "$(basename "$(dirname "$(dirname "$hba")")")" main reload
fi

if ! port_open 6379; then
  $SUDO redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
  wait_port 6379 Redis
fi

if ! port_open 5672; then
  $SUDO rabbitmq-server -detached
  wait_port 5672 RabbitMQ
fi
echo "services.sh: PostgreSQL :5432, Redis :6379, RabbitMQ :5672 up on 127.0.0.1"
