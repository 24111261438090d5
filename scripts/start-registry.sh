#!/usr/bin/env bash
# Starts Debian's docker-registry on 127.0.0.1 at a free port with a config
# written here (the packaged one listens on all interfaces with auth).
# Usage: start-registry.sh DIR [htpasswd-file]
# Prints "PORT PID"; stop it with `kill PID`. Data lives under DIR.
set -euo pipefail
dir=${1:?usage: start-registry.sh DIR [HTPASSWD]}
htpasswd=${2:-}
mkdir -p "$dir/data"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
{
  echo "version: 0.1"
  echo "log: {level: warn}"
  echo "storage: {filesystem: {rootdirectory: $dir/data}, delete: {enabled: true}}"
  echo "http: {addr: 127.0.0.1:$port, secret: container-test}"
  if [ -n "$htpasswd" ]; then echo "auth: {htpasswd: {realm: container-test, path: $htpasswd}}"; fi
} > "$dir/config.yml"
docker-registry serve "$dir/config.yml" > "$dir/registry.log" 2>&1 &
pid=$!
for _ in $(seq 100); do
  if curl -s -o /dev/null "http://127.0.0.1:$port/v2/"; then echo "$port $pid"; exit 0; fi
  sleep 0.05
done
echo "start-registry: registry did not come up; log:" >&2; cat "$dir/registry.log" >&2; kill $pid 2>/dev/null; exit 1
