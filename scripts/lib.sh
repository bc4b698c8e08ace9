# Shared helpers for Vigil's scripts; sourced, not run.

# Where Vigil keeps what setup installs (ONNX Runtime, Python tooling, models). The agent uses the same rule.
VIGIL_CACHE=${VIGIL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vigil}
export VIGIL_CACHE

step() { printf '==> %s\n' "$*"; }
ok() { printf ' ok %s\n' "$*"; }
die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}
sha256() { sha256sum "$1" | cut -d' ' -f1; }
