#!/usr/bin/env bash
# Makes sure a Docker Engine >= 25 with the compose v2 and buildx plugins runs here, and that the
# four public images docker-compose.yml and infra/Dockerfile name are there (pulled, or built as
# local stand-ins by ../shared/standin-images/build.sh when no registry answers).
# On Debian bookworm the engine comes from trixie, added as a low-priority source derived from the
# machine's own /etc/apt/sources.list.d/debian.sources. Needs root for the installation and dockerd.
# Fails loudly, never silently, when something cannot be done.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
export DEBIAN_FRONTEND=noninteractive
IMAGES=(node:24-alpine postgres:17 redis:7-alpine nats:2-alpine)
MIN_ENGINE=25
started=$SECONDS
# apt-get that waits (up to 5 min) for another apt or dpkg run on this machine to finish.
apt_get() { apt-get -o DPkg::Lock::Timeout=300 "$@"; }
say() { printf 'docker-engine: %s (%ss)\n' "$*" "$((SECONDS - started))"; }
fail() { printf 'docker-engine: %s\n' "$*" >&2; exit 1; }

engine_major() { docker version --format '{{.Server.Version}}' 2>/dev/null | cut -d. -f1; }
plugins_work() { docker compose version >/dev/null 2>&1 && docker buildx version >/dev/null 2>&1; }
client_installed() { command -v docker >/dev/null && command -v dockerd >/dev/null && plugins_work; }

# trixie as a source pinned at 100, so nothing comes from it unless asked for by name. Only the
# first stanza (the main archive), with `Suites: trixie` alone: trixie-updates or -security lines
# escape an n=trixie pin and would upgrade libc.
add_trixie_source() {
  local debian=/etc/apt/sources.list.d/debian.sources
  [[ -r $debian ]] || fail "$debian is missing: add a Debian trixie source by hand and install docker.io, docker-compose and docker-buildx (Docker Engine >= $MIN_ENGINE)"
  awk 'BEGIN { RS = ""; ORS = "\n" } NR == 1 { print; exit }' "$debian" |
    sed -E 's/^Suites:.*/Suites: trixie/' >/etc/apt/sources.list.d/trixie.sources
  printf 'Package: *\nPin: release n=trixie\nPin-Priority: 100\n' >/etc/apt/preferences.d/trixie
}

install_engine() {
  [[ $(id -u) == 0 ]] || fail "Docker Engine >= $MIN_ENGINE with compose v2 and buildx is missing, and installing it needs root"
  if grep -qs 'VERSION_CODENAME=bookworm' /etc/os-release; then
    add_trixie_source
    say "installing docker.io, docker-compose and docker-buildx from trixie"
    apt_get update -qq
    # package/trixie, not -t trixie: that one takes every dependency from trixie (libc6 2.41, perl,
    # python3 and apt among them); this takes five packages (the three, docker-cli, containerd) and
    # keeps bookworm's libc6 2.36 and runc 1.1.5 (on a fresh bookworm, Engine 26 with them ran a
    # container with init, a read-only root and no capabilities, and compose --wait on a healthcheck)
    apt_get install -y -qq docker.io/trixie docker-compose/trixie docker-buildx/trixie >/dev/null
  else
    say "installing docker.io, docker-compose and docker-buildx"
    apt_get update -qq
    apt_get install -y -qq docker.io docker-compose docker-buildx >/dev/null
  fi
}

start_dockerd() {
  [[ $(id -u) == 0 ]] || fail "dockerd is not running and starting it needs root"
  say "starting dockerd (log: /var/log/dockerd.log)"
  # setsid: a daemon of its own, not stopped with the shell or job that started it
  setsid dockerd >>/var/log/dockerd.log 2>&1 </dev/null &
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && return
    sleep 0.5
  done
  tail -n 20 /var/log/dockerd.log >&2
  fail "dockerd did not answer within 30 s"
}

client_installed || install_engine
client_installed || fail "docker, dockerd, docker compose or docker buildx is still missing after the installation"
docker info >/dev/null 2>&1 || start_dockerd
major=$(engine_major)
((${major:-0} >= MIN_ENGINE)) || fail "Docker Engine ${major:-?} is older than $MIN_ENGINE (compose refuses healthcheck.start_interval on it)"
say "Docker Engine $(docker version --format '{{.Server.Version}}'), $(docker compose version --short 2>/dev/null | sed 's/^/compose /')"

missing=()
for image in "${IMAGES[@]}"; do
  docker image inspect "$image" >/dev/null 2>&1 || missing+=("$image")
done
if ((${#missing[@]} > 0)); then
  say "pulling ${missing[*]}"
  pulled=true
  for image in "${missing[@]}"; do
    timeout 90 docker pull --quiet "$image" >/dev/null 2>&1 || { pulled=false; break; }
  done
  if ! $pulled; then
    standins=../shared/standin-images/build.sh
    [[ -x $standins ]] || fail "no registry answers and $standins is missing to build stand-ins for ${missing[*]}"
    command -v mmdebstrap >/dev/null || { apt_get update -qq && apt_get install -y -qq mmdebstrap >/dev/null; }
    say "no registry answers; building stand-ins with $standins"
    "$standins"
  fi
fi
say "ready"
