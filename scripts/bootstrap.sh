#!/usr/bin/env bash
# Set up everything codeens needs on a fresh Debian-like machine, then run one task.
#
#   bash scripts/bootstrap.sh example            # solve the bundled example problem
#   bash scripts/bootstrap.sh test [pytest args] # lint, type-check and run the tests
#
# Each step is skipped when already satisfied, so running it twice is safe. As root with
# apt-get it installs the Docker engine (docker.io), debootstrap and python3-venv itself;
# otherwise it says what is missing. It never reads standard input.
set -euo pipefail

usage() {
    echo "usage: bash scripts/bootstrap.sh {example|test} [pytest args...]" >&2
    exit 2
}

[ $# -ge 1 ] || usage
task=$1
shift
case "$task" in
example | test) ;;
*) usage ;;
esac

cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO=$(pwd)
export DEBIAN_FRONTEND=noninteractive
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"
export PIP_DISABLE_PIP_VERSION_CHECK=1
DOCKERD_LOG=/var/log/codeens-dockerd.log

log() { echo "[codeens] $*" >&2; }
die() {
    echo "[codeens] $*" >&2
    exit 1
}

now() { echo "${EPOCHREALTIME:-$(date +%s)}"; }
step_started=$(now)
step() {
    step_started=$(now)
    log "$*"
}
step_done() {
    log "$1 ($(awk -v a="$step_started" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }') s)"
}

is_root() { [ "$(id -u)" -eq 0 ]; }
have() { command -v "$1" >/dev/null 2>&1; }
can_apt() { is_root && have apt-get; }

apt_updated=0
apt_install() {
    if [ "$apt_updated" -eq 0 ]; then
        log "apt-get update"
        apt-get update -q </dev/null >&2
        apt_updated=1
    fi
    log "apt-get install $*"
    apt-get install -y -q "$@" </dev/null >&2
}

docker_answers() { have docker && timeout 30 docker info >/dev/null 2>&1; }

dockerd_running() {
    local comm
    for comm in /proc/[0-9]*/comm; do
        if [ "$(cat "$comm" 2>/dev/null)" = dockerd ]; then
            return 0
        fi
    done
    return 1
}

engine_hint() {
    echo "[codeens] no Docker engine answers: install Docker (Debian/Ubuntu:" \
        "'apt-get install docker.io') and start it, or re-run this script as root." >&2
}

# --- a. Docker engine (and debootstrap, which builds the sandbox image offline) ----------
step "step 1/4: Docker engine"
if docker_answers; then
    log "Docker engine answers"
elif can_apt; then
    if ! have docker || ! have dockerd; then
        apt_install docker.io debootstrap
    fi
    if docker_answers; then
        log "Docker engine answers"
    else
        if dockerd_running; then
            log "dockerd is already starting; waiting for it"
        else
            log "starting dockerd --iptables=false (log: $DOCKERD_LOG)"
            nohup dockerd --iptables=false >"$DOCKERD_LOG" 2>&1 </dev/null &
        fi
        for _ in $(seq 1 60); do
            docker_answers && break
            sleep 1
        done
        if ! docker_answers; then
            tail -n 20 "$DOCKERD_LOG" >&2 2>/dev/null || true
            die "dockerd did not answer within 60 s (see $DOCKERD_LOG)"
        fi
        log "Docker engine answers"
    fi
else
    engine_hint
    exit 1
fi
if is_root && ! have debootstrap && [ ! -x /usr/sbin/debootstrap ]; then
    if can_apt; then
        apt_install debootstrap
    else
        log "debootstrap is missing and apt-get is not available"
    fi
fi
step_done "step 1/4 done"

# --- b. Python virtual environment and the package in strict editable mode -------------
step "step 2/4: Python environment (.venv)"
PYTHON=${PYTHON:-python3}
have "$PYTHON" || die "$PYTHON not found: install Python 3.11 or newer"
if [ ! -x .venv/bin/python ] || [ ! -x .venv/bin/pip ]; then
    if ! "$PYTHON" -c 'import venv, ensurepip' >/dev/null 2>&1; then
        if can_apt; then
            apt_install python3-venv
        else
            die "the Python venv module is missing: install python3-venv"
        fi
    fi
    rm -rf .venv
    log "creating .venv with $("$PYTHON" --version 2>&1)"
    "$PYTHON" -m venv .venv
fi
# Strict editable mode: pyproject maps top-level folders into the codeens namespace, and
# mypy must follow the resulting link tree. Files added later need a re-install, hence
# this runs every time (quick when everything is satisfied).
# torch first and pinned: 2.13.0 is the CPU build this kind of machine offers; an unpinned
# torch, asked for by transformers, would pull several GB of CUDA wheels.
if ! .venv/bin/python -c 'import torch' >/dev/null 2>&1; then
    log "pip install torch==2.13.0"
    .venv/bin/pip install -q torch==2.13.0 </dev/null
fi
# llama-cpp-python has no wheel on the registry and takes minutes to compile: build it
# once per machine into a wheel cache and install from there afterwards.
# It compiles for the build machine's CPU (-march=native). On Xeons with AMX that enables
# ggml's AMX matrix kernels, which crash (SIGSEGV in ggml_backend_amx_mul_mat) on the
# virtual machines here: AMX is switched off, every other native instruction set stays.
# The folder name carries that choice, so a wheel built without it is never reused.
WHEELS=${CODEENS_WHEEL_CACHE:-$HOME/.cache/codeens/wheels}/noamx
LLAMA_VERSION=$(sed -n 's/.*"llama-cpp-python==\([0-9.]*\)".*/\1/p' pyproject.toml)
NO_AMX="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
mkdir -p "$WHEELS"
if ! ls "$WHEELS"/llama_cpp_python-"$LLAMA_VERSION"-*.whl >/dev/null 2>&1; then
    log "building llama-cpp-python $LLAMA_VERSION once into $WHEELS (several minutes)"
    CFLAGS="$NO_AMX" CXXFLAGS="$NO_AMX" .venv/bin/pip wheel -q --no-deps --no-cache-dir \
        "llama-cpp-python==$LLAMA_VERSION" -w "$WHEELS" </dev/null
fi
# A venv made before the AMX switch holds the crashing build: replace it.
if .venv/bin/python -c 'import llama_cpp, sys; sys.exit(b"AMX_INT8 = 1" not in llama_cpp.llama_print_system_info())' >/dev/null 2>&1; then
    log "replacing llama-cpp-python built with AMX"
    .venv/bin/pip install -q --no-deps --force-reinstall "$WHEELS"/llama_cpp_python-"$LLAMA_VERSION"-*.whl </dev/null
fi
log "pip install -e '.[dev]' (strict editable)"
.venv/bin/pip install -q --find-links "$WHEELS" -e '.[dev]' \
    --config-settings editable_mode=strict </dev/null
# Bytecode for the link tree, as pip writes it for a regular install: with
# PYTHONDONTWRITEBYTECODE set (as on these machines) every codeens command would otherwise
# compile each module it imports, every time (about 50 ms per start).
.venv/bin/python -m compileall -q build/__editable__.codeens-*/ >/dev/null || true
step_done "step 2/4 done"

# --- c. Sandbox image (a no-op when it exists) ------------------------------------------
step "step 3/4: sandbox image"
.venv/bin/codeens sandbox build </dev/null
step_done "step 3/4 done"

# --- d. The task --------------------------------------------------------------------------
case "$task" in
example)
    log "step 4/4: codeens solve examples/problems/add.py (embedded models, offline)"
    exec .venv/bin/codeens solve examples/problems/add.py
    ;;
test)
    # Debian's chromium, headless, opens the eval report in the report tests.
    if ! have chromium && can_apt; then
        step "step 4/4: chromium (headless browser for the report tests)"
        apt_install chromium
        step_done "chromium done"
    fi
    # mergekit, for the merge parity tests, in a venv of its own: it pins click and pydantic
    # versions that codeens does not. About 75 s the first time (torch first, as above).
    if ! .venv-mergekit/bin/mergekit-yaml --help >/dev/null 2>&1; then
        step "step 4/4: mergekit environment (.venv-mergekit)"
        rm -rf .venv-mergekit
        "$PYTHON" -m venv .venv-mergekit
        .venv-mergekit/bin/pip install -q torch==2.13.0 </dev/null
        .venv-mergekit/bin/pip install -q mergekit </dev/null
        step_done "mergekit environment done"
    fi
    step "step 4/4: ruff check"
    .venv/bin/ruff check .
    step_done "ruff check done"
    step "step 4/4: ruff format --check"
    .venv/bin/ruff format --check .
    step_done "ruff format done"
    step "step 4/4: mypy"
    # From outside the checkout: there, ./codeens would shadow the installed package
    # whose codeens.sandbox, codeens.storage... map to the top-level folders.
    (cd /tmp && "$REPO/.venv/bin/mypy" -p codeens --config-file "$REPO/pyproject.toml")
    step_done "mypy done"
    log "step 4/4: pytest $* (repo: $REPO)"
    # The pytest script, not `python -m pytest`: the latter puts the checkout first on
    # sys.path, where ./codeens lacks the mapped subpackages.
    exec .venv/bin/pytest "$@"
    ;;
esac
