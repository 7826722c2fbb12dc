#!/usr/bin/env bash
# Make sure RabbitMQ answers at GRIDLINK_AMQP_URL (default amqp://guest:guest@127.0.0.1:5672/):
# start the local rabbitmq-server if it is installed but stopped; install Debian's package when
# running as root with apt; otherwise say what to start.
set -euo pipefail
url="${GRIDLINK_AMQP_URL:-amqp://guest:guest@127.0.0.1:5672/}"
hostport="${url#*://}"; hostport="${hostport#*@}"; hostport="${hostport%%/*}"
host="${hostport%%:*}"; port="${hostport##*:}"; [ "$port" = "$hostport" ] && port=5672

reachable() { (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; }
wait_up() {
  for _ in $(seq 1 120); do reachable && return 0; sleep 0.5; done
  return 1
}

reachable && exit 0
case "$host" in
  127.*|localhost|::1) ;;
  *) echo "RabbitMQ at $host:$port is not reachable; start it or fix GRIDLINK_AMQP_URL" >&2; exit 1;;
esac
if ! command -v rabbitmq-server >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing rabbitmq-server (Debian package)..." >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq rabbitmq-server >/dev/null
  else
    echo "RabbitMQ is not running on $host:$port and rabbitmq-server is not installed:" \
         "install it (apt-get install rabbitmq-server) or set GRIDLINK_AMQP_URL" >&2
    exit 1
  fi
fi
reachable && exit 0
echo "starting rabbitmq-server..." >&2
rabbitmq-server -detached >/dev/null 2>&1 || true
if ! wait_up; then
  echo "rabbitmq-server did not start listening on $host:$port (see /var/log/rabbitmq)" >&2
  exit 1
fi
