#!/usr/bin/env bash
# `make compose-test`: the docker-compose deployment built and run on this host without an image
# registry, then its smoke test (refrig_assets_tests/deployment/test_compose_stack.py).
#
#   deploy/compose-test.sh         everything: engine, images, stack, smoke test, tear-down;
#                                  once passed, deploy/compose-test.passed.json records it
#   deploy/compose-test.sh build   engine and images only (the engine is left running)
#   deploy/compose-test.sh up      engine, images and stack, left running; prints how to reach it
#   deploy/compose-test.sh test    the smoke test against a stack left running by `up`
#   deploy/compose-test.sh down    the test stack removed (its volumes too); the engine stopped
#
# Steps (each skipped when already done):
#   1. Debian packages docker.io, docker-compose, debootstrap (scripts/system_packages.sh);
#   2. a private dockerd when no engine answers: own socket, data root $REFRIG_DOCKER_DIR/data,
#      storage driver overlay2 where overlay mounts work, else vfs; no iptables, no default
#      bridge; stopped again at the end by its PID;
#   3. the base image refrig-debian-python:bookworm, once: `debootstrap bookworm` (Python 3.11
#      and a virtualenv at /opt/python, the host's extra CA certificates from
#      REFRIG_EXTRA_CA_DIR), then `docker import`; the root filesystem is cached as a tarball
#      next to the data root (delete $REFRIG_DOCKER_DIR/base to make it again);
#   4. the images (deploy/Dockerfile targets platform and user_code, deploy/postgres/Dockerfile)
#      FROM that base, with `--network host` so apt and pip reach the package registries; the
#      CPU torch wheel comes from this host's wheel directory (pip's find-links), served on
#      loopback for the build (the build sees nothing of the host's files otherwise);
#   5. the stack: docker-compose.yml + deploy/compose.offline.yml (postgres from Debian's
#      packages) + deploy/compose.loopback.yml (host networking, every service on 127.0.0.1 at a
#      free port of its own), credentials generated into a mode-600 file, never printed.
# Needs root (dockerd, debootstrap). Settings: REFRIG_DOCKER_DIR (default /var/lib/refrig-docker),
# REFRIG_DOCKER_STORAGE_DRIVER (overlay2 or vfs), REFRIG_DEBIAN_MIRROR, REFRIG_IMAGE_TAG (default latest), REFRIG_WHEEL_PORT (47813),
# REFRIG_NICE (niceness of the engine and the builds, default 15), VENV (.venv),
# REFRIG_COMPOSE_LOG_DIR (build and engine logs, default /tmp/refrig-compose-test),
# REFRIG_COMPOSE_SOURCE: `worktree` (default: the checkout as it is) or `head` (the last commit,
# exported with `git archive`: what a fresh clone would build, whatever is being edited here).
set -Eeuo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=$(realpath "${VENV:-.venv}")
STATE=${REFRIG_DOCKER_DIR:-/var/lib/refrig-docker}
SOURCE=${REFRIG_COMPOSE_SOURCE:-worktree}
RUN_DIR=$STATE/compose-test
LOG_DIR=${REFRIG_COMPOSE_LOG_DIR:-/tmp/refrig-compose-test}
SOCK=$STATE/docker.sock
PIDFILE=$STATE/dockerd.pid
OWNED=$STATE/dockerd.owned # present while the engine is the one this script started
EXEC_ROOT=/run/refrig-docker
MIRROR=${REFRIG_DEBIAN_MIRROR:-http://deb.debian.org/debian}
EXTRA_CA_DIR=${REFRIG_EXTRA_CA_DIR:-/usr/local/share/ca-certificates}
BASE_IMAGE=refrig-debian-python:bookworm
TAG=${REFRIG_IMAGE_TAG:-latest}
PROJECT=refrig-compose-test
WHEEL_PORT=${REFRIG_WHEEL_PORT:-47813}
NICE=(nice -n "${REFRIG_NICE:-15}")
export DOCKER_BUILDKIT=0 # the classic builder: no buildx plugin on this kind of host

mkdir -p "$LOG_DIR"
say() { echo "[compose-test $(date -u +%H:%M:%S)] $*" >&2; }
die() {
  say "error: $*"
  exit 1
}
timing() { echo "$1 $2" >>"$LOG_DIR/timings.txt"; }

# Builds and compose run from the checkout, or from an export of HEAD.
use_source() {
  if [ "$SOURCE" = head ]; then
    rm -rf "$STATE/source" && mkdir -p "$STATE/source"
    git archive HEAD | tar -x -C "$STATE/source"
    cd "$STATE/source"
    say "building and running commit $(git -C "$ROOT" rev-parse --short HEAD)"
  elif [ "$SOURCE" != worktree ]; then
    die "REFRIG_COMPOSE_SOURCE is worktree or head, not $SOURCE"
  fi
}

require_root() {
  [ "$(id -u)" = 0 ] || die "needs root: it starts dockerd and runs debootstrap"
}

install_packages() {
  local missing=()
  command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
  command -v docker-compose >/dev/null 2>&1 || docker compose version >/dev/null 2>&1 ||
    missing+=(docker-compose)
  [ -x /usr/sbin/debootstrap ] || command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
  [ ${#missing[@]} -eq 0 ] && return
  scripts/system_packages.sh "${missing[@]}"
  command -v dockerd >/dev/null 2>&1 || die "dockerd missing after installing docker.io"
  command -v docker >/dev/null 2>&1 || die "no docker client"
}

# overlay2 when the kernel mounts an overlay on the data root's file system (ext4 here: a build
# step costs seconds), else vfs, which works everywhere but copies the whole image for every
# layer and container. REFRIG_DOCKER_STORAGE_DRIVER forces one.
storage_driver() {
  if [ -n "${REFRIG_DOCKER_STORAGE_DRIVER:-}" ]; then
    echo "$REFRIG_DOCKER_STORAGE_DRIVER"
    return
  fi
  local probe=$STATE/overlay-probe driver=vfs
  rm -rf "$probe" && mkdir -p "$probe"/{lower,upper,work,merged}
  if mount -t overlay overlay -o "lowerdir=$probe/lower,upperdir=$probe/upper,workdir=$probe/work" \
    "$probe/merged" 2>/dev/null; then
    umount "$probe/merged"
    driver=overlay2
  fi
  rm -rf "$probe"
  echo "$driver"
}

engine_answers() { timeout 20 docker info >/dev/null 2>&1; }

# An engine that already answers (DOCKER_HOST, the system socket, or ours from an earlier `up`)
# is used as it is; otherwise a private one starts, niced, so builds and containers are too.
engine_up() {
  if [ -n "${DOCKER_HOST:-}" ] && engine_answers; then
    say "using the engine at $DOCKER_HOST"
    return
  fi
  export DOCKER_HOST=unix:///var/run/docker.sock
  if [ -S /var/run/docker.sock ] && engine_answers; then
    say "using the system engine"
    return
  fi
  export DOCKER_HOST=unix://$SOCK
  if [ -S "$SOCK" ] && engine_answers; then
    say "using the private engine started earlier (pid $(cat "$PIDFILE" 2>/dev/null))"
    return
  fi
  mkdir -p "$STATE/data" "$EXEC_ROOT"
  local driver
  driver=$(storage_driver)
  say "starting a private dockerd ($driver, data root $STATE/data, log $LOG_DIR/dockerd.log)"
  "${NICE[@]}" dockerd --data-root "$STATE/data" --exec-root "$EXEC_ROOT" --pidfile "$PIDFILE" \
    -H "unix://$SOCK" --storage-driver "$driver" --iptables=false --ip-masq=false --bridge=none \
    >>"$LOG_DIR/dockerd.log" 2>&1 &
  echo $! >"$OWNED"
  for _ in $(seq 60); do
    engine_answers && return
    kill -0 "$(cat "$OWNED")" 2>/dev/null || break
    sleep 1
  done
  tail -20 "$LOG_DIR/dockerd.log" >&2
  die "dockerd did not answer on $SOCK"
}

engine_down() {
  [ -f "$OWNED" ] || return 0
  local pid
  pid=$(cat "$OWNED")
  if kill -0 "$pid" 2>/dev/null; then
    say "stopping the private dockerd (pid $pid)"
    kill -TERM "$pid"
    for _ in $(seq 60); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 1
    done
    kill -0 "$pid" 2>/dev/null && die "dockerd (pid $pid) still running after 60 s"
  fi
  rm -f "$OWNED"
}

base_image() {
  if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
    return
  fi
  local tarball=$STATE/base/bookworm-python.tar rootfs=$STATE/base/rootfs start=$SECONDS
  if [ ! -s "$tarball" ]; then
    say "debootstrap bookworm (log $LOG_DIR/debootstrap.log)"
    rm -rf "$rootfs" && mkdir -p "$STATE/base"
    "${NICE[@]}" debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
      bookworm "$rootfs" "$MIRROR" >"$LOG_DIR/debootstrap.log" 2>&1 ||
      die "debootstrap failed, see $LOG_DIR/debootstrap.log"
    cat >"$rootfs/etc/apt/sources.list" <<EOF
deb $MIRROR bookworm main
deb $MIRROR bookworm-updates main
deb http://deb.debian.org/debian-security bookworm-security main
EOF
    # The host's own certificate authorities (e.g. a TLS-inspecting proxy's): builds reach the
    # package registries the way the host does.
    if compgen -G "$EXTRA_CA_DIR/*.crt" >/dev/null; then
      cp "$EXTRA_CA_DIR"/*.crt "$rootfs/usr/local/share/ca-certificates/"
      chroot "$rootfs" update-ca-certificates >/dev/null 2>&1
    fi
    # `python` and `pip` on PATH as in the python:3.11-slim images (ENV PATH below).
    chroot "$rootfs" python3 -m venv /opt/python
    chroot "$rootfs" /opt/python/bin/python -m pip --version >/dev/null
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
      "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/locale/* \
      "$rootfs"/var/log/*.log "$rootfs"/root/.cache
    tar --numeric-owner -C "$rootfs" -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
    rm -rf "$rootfs"
  fi
  say "docker import $BASE_IMAGE"
  docker import \
    --change 'ENV PATH=/opt/python/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' --change 'CMD ["python"]' \
    --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
    --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
    "$tarball" "$BASE_IMAGE" >/dev/null
  timing base_image_s $((SECONDS - start))
}

WHEEL_SERVER=
TORCH_URL=
# TORCH_URL: the CPU torch wheel that pip on this host would install (find-links of PIP_FIND_LINKS or pip's
# configuration), never a download: without one the build uses the Dockerfile's CPU index.
torch_wheel_url() {
  local spec wheels=$STATE/wheels wheel
  spec=$(grep -o 'torch==[0-9.]*' pyproject.toml)
  mkdir -p "$wheels"
  wheel=$(compgen -G "$wheels/torch-${spec#torch==}+cpu-*.whl" | head -1 || true)
  if [ -z "$wheel" ]; then
    "$VENV/bin/pip" download --no-index --no-deps --only-binary=:all: "$spec" -d "$wheels" \
      >"$LOG_DIR/torch-wheel.log" 2>&1 || true
    wheel=$(compgen -G "$wheels/torch-${spec#torch==}+cpu-*.whl" | head -1 || true)
  fi
  if [ -z "$wheel" ]; then
    say "no local CPU wheel for $spec: the build uses the Dockerfile's TORCH_INDEX_URL"
    return 0
  fi
  python3 -m http.server --bind 127.0.0.1 --directory "$wheels" "$WHEEL_PORT" \
    >"$LOG_DIR/wheel-server.log" 2>&1 &
  WHEEL_SERVER=$!
  for _ in $(seq 20); do
    if python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', $WHEEL_PORT), 1)" \
      2>/dev/null; then
      TORCH_URL="http://127.0.0.1:$WHEEL_PORT/$(basename "$wheel")"
      return 0
    fi
    sleep 0.5
  done
  die "could not serve the torch wheel on 127.0.0.1:$WHEEL_PORT (port taken? set REFRIG_WHEEL_PORT)"
}

stop_wheel_server() {
  if [ -n "$WHEEL_SERVER" ]; then
    kill "$WHEEL_SERVER" 2>/dev/null || true
    wait "$WHEEL_SERVER" 2>/dev/null || true
    WHEEL_SERVER=
  fi
}

build() {
  local name=$1 start=$SECONDS
  shift
  say "building $name (log $LOG_DIR/build-$name.log)"
  if ! "${NICE[@]}" docker build --network host "$@" >"$LOG_DIR/build-$name.log" 2>&1; then
    tail -40 "$LOG_DIR/build-$name.log" >&2
    die "building $name failed"
  fi
  timing "build_${name}_s" $((SECONDS - start))
}

build_images() {
  base_image
  build postgres --build-arg "BASE_IMAGE=$BASE_IMAGE" -t "refrig-assets-postgres:$TAG" \
    deploy/postgres
  build platform -f deploy/Dockerfile --target platform --build-arg "PYTHON_IMAGE=$BASE_IMAGE" \
    -t "refrig-assets-platform:$TAG" .
  torch_wheel_url
  build user_code -f deploy/Dockerfile --target user_code --build-arg "PYTHON_IMAGE=$BASE_IMAGE" \
    ${TORCH_URL:+--build-arg "TORCH_WHEEL_URL=$TORCH_URL"} -t "refrig-assets-user-code:$TAG" .
  stop_wheel_server
  # Images that a rebuild replaced (untagged): only disk.
  docker image prune -f >/dev/null
  docker image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep -E '^refrig-' |
    tee "$LOG_DIR/image-sizes.txt" >&2
}

free_port() { python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])"; }
secret() { python3 -c "import secrets; print(secrets.token_hex(24))"; }

# Settings of one test stack: fresh credentials and free loopback ports, readable by root only.
write_settings() {
  mkdir -p "$RUN_DIR"
  rm -rf "$RUN_DIR/models" && cp -r models "$RUN_DIR/models" && chown -R 10001 "$RUN_DIR/models"
  (
    umask 077
    cat >"$RUN_DIR/stack.env" <<EOF
POSTGRES_USER=refrig
POSTGRES_PASSWORD=$(secret)
REFRIG_APP_DB_PASSWORD=$(secret)
MLFLOW_ADMIN_USERNAME=refrig-admin
MLFLOW_ADMIN_PASSWORD=$(secret)
MLFLOW_FLASK_SECRET_KEY=$(secret)
REFRIG_IMAGE_TAG=$TAG
REFRIG_PARTITION_START=2026-01-01-00:00
REFRIG_CADENCE_SECONDS=
DAGSTER_UI_PORT=3000
MLFLOW_UI_PORT=5000
LOOPBACK_PG_PORT=$(free_port)
LOOPBACK_MLFLOW_PORT=$(free_port)
LOOPBACK_GRPC_PORT=$(free_port)
LOOPBACK_UI_PORT=$(free_port)
LOOPBACK_CONSOLE_PORT=$(free_port)
LOOPBACK_SERVING_PORT=$(free_port)
LOOPBACK_MODELS_DIR=$RUN_DIR/models
LOOPBACK_SCHEDULED_PARTITION=2026-01-01-02:00
EOF
  )
  local client
  if docker compose version >/dev/null 2>&1; then client="docker compose"; else client=docker-compose; fi
  # One resolved file: compose refuses published ports with host networking, and an override
  # can add to docker-compose.yml's `ports` but not remove them.
  (
    umask 077
    $client -p $PROJECT --env-file "$RUN_DIR/stack.env" -f docker-compose.yml \
      -f deploy/compose.offline.yml -f deploy/compose.loopback.yml config >"$RUN_DIR/stack.full.yml"
    "$VENV/bin/python" - "$RUN_DIR/stack.full.yml" "$RUN_DIR/stack.yml" <<'EOF'
import sys

import yaml

with open(sys.argv[1]) as source:
    spec = yaml.safe_load(source)
on_bridge = [name for name, s in spec["services"].items() if s.get("network_mode") != "host"]
if on_bridge:
    sys.exit(f"not on loopback: {', '.join(on_bridge)}; add them to deploy/compose.loopback.yml")
for service in spec["services"].values():
    service.pop("ports", None)
with open(sys.argv[2], "w") as out:
    yaml.safe_dump(spec, out, sort_keys=False)
EOF
    rm "$RUN_DIR/stack.full.yml"
  )
  cat >"$RUN_DIR/compose" <<EOF
#!/usr/bin/env bash
# docker-compose for the test stack of deploy/compose-test.sh (e.g. \`$RUN_DIR/compose ps\`).
export DOCKER_HOST=$DOCKER_HOST
exec $client -p $PROJECT --project-directory "$PWD" -f "$RUN_DIR/stack.yml" "\$@"
EOF
  chmod 0700 "$RUN_DIR/compose"
}

wait_healthy() {
  local deadline=$((SECONDS + ${1:-600})) unhealthy
  while :; do
    unhealthy=$(for id in $("$RUN_DIR/compose" ps -q); do
      docker inspect -f '{{.Name}} {{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}-{{end}}' "$id"
    done | grep -v -E ' running healthy$| exited -$' || true)
    [ -z "$unhealthy" ] && return
    if [ $SECONDS -ge $deadline ]; then
      echo "$unhealthy" >&2
      "$RUN_DIR/compose" logs --tail 40 >&2 || true
      die "services not healthy"
    fi
    sleep 5
  done
}

stack_up() {
  local start=$SECONDS
  write_settings
  "$RUN_DIR/compose" down -v --remove-orphans >/dev/null 2>&1 || true
  say "docker-compose up (stack $PROJECT)"
  "$RUN_DIR/compose" up -d --no-build >"$LOG_DIR/compose-up.log" 2>&1 || {
    tail -40 "$LOG_DIR/compose-up.log" >&2
    die "docker-compose up failed"
  }
  wait_healthy 900
  timing stack_up_s $((SECONDS - start))
  say "stack healthy: $RUN_DIR/compose ps"
}

stack_down() {
  if [ -x "$RUN_DIR/compose" ] && engine_answers; then
    "$RUN_DIR/compose" logs --no-color >"$LOG_DIR/stack.log" 2>&1 || true
    "$RUN_DIR/compose" down -v --remove-orphans >/dev/null 2>&1 || true
  fi
}

smoke_test() {
  local start=$SECONDS
  say "smoke test"
  (cd "$ROOT" && REFRIG_COMPOSE="$RUN_DIR/compose" REFRIG_COMPOSE_ENV="$RUN_DIR/stack.env" \
    "$VENV/bin/pytest" -q -p no:cacheprovider -m compose \
    refrig_assets_tests/deployment/test_compose_stack.py)
  timing smoke_test_s $((SECONDS - start))
}

# deploy/compose-test.passed.json (committed): the deployment files this run built and ran
# passed; `make test` checks that they have not changed since (deploy/compose_stamp.py).
record_pass() {
  local commit
  commit=$(git -C "$ROOT" describe --always --dirty --abbrev=12 2>/dev/null || true)
  "$VENV/bin/python" deploy/compose_stamp.py write --source . --expect "$1" \
    --out "$ROOT/deploy/compose-test.passed.json" --commit "$commit" --source-kind "$SOURCE" \
    --wall-s "$2" --timings "$LOG_DIR/timings.txt" --images "$LOG_DIR/image-sizes.txt" &&
    say "passed in $2 s; recorded in deploy/compose-test.passed.json (commit it)"
}

cleanup() {
  stop_wheel_server
  if [ "${REFRIG_KEEP_STACK:-}" != 1 ]; then
    stack_down
    engine_down
  fi
}

main() {
  local mode=${1:-all}
  case "$mode" in
    all)
      require_root
      : >"$LOG_DIR/timings.txt"
      trap cleanup EXIT
      local began=$SECONDS tested
      install_packages
      engine_up
      use_source
      tested=$("$VENV/bin/python" deploy/compose_stamp.py fingerprint .)
      build_images
      stack_up
      smoke_test
      record_pass "$tested" $((SECONDS - began))
      ;;
    build)
      require_root
      trap stop_wheel_server EXIT
      install_packages
      engine_up
      use_source
      build_images
      ;;
    up)
      require_root
      install_packages
      engine_up
      use_source
      build_images
      stack_up
      echo "export DOCKER_HOST=$DOCKER_HOST REFRIG_COMPOSE=$RUN_DIR/compose REFRIG_COMPOSE_ENV=$RUN_DIR/stack.env"
      ;;
    test)
      export DOCKER_HOST=${DOCKER_HOST:-unix://$SOCK}
      smoke_test
      ;;
    down)
      export DOCKER_HOST=${DOCKER_HOST:-unix://$SOCK}
      stack_down
      engine_down
      ;;
    *) die "usage: $0 [all|build|up|test|down]" ;;
  esac
}

main "$@"
