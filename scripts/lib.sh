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

# --- ONNX Runtime --------------------------------------------------------------------------------
# The agent loads ONNX Runtime at run time (ort's load-dynamic). Only the shared library is needed (it
# depends on libc and libstdc++ alone), so it is taken from the onnxruntime wheel on PyPI: downloaded,
# checked against the pinned hash, unpacked; no Python package is installed.
ORT_VERSION=1.32.0

# ort_fetch ARCH DEST: puts DEST/libonnxruntime.so.$ORT_VERSION for ARCH (x86_64 or aarch64), from the
# manylinux_2_28 wheel, both the wheel and the library checked by SHA-256. Does nothing when the library
# is already there with the right hash.
ort_fetch() {
    local arch=$1 dest=$2 wheel wheel_sha lib_sha
    case "$arch" in
        x86_64)
            wheel=onnxruntime-$ORT_VERSION-cp311-cp311-manylinux_2_28_x86_64.whl
            wheel_sha=5a34fc4dfeb5a7b4a74c95dcba1e773d722abda720b474edf1b0c419dc6d163d
            lib_sha=6c1585d1bbf45b0712ea4a21b705c5fcb4ba04ff2e30f1fbf81a49faf658638f
            ;;
        aarch64)
            wheel=onnxruntime-$ORT_VERSION-cp311-cp311-manylinux_2_28_aarch64.whl
            wheel_sha=2303372a85299b6757b0e11e1cbf13e410ddf7e10c37f4b37e99d1c90e7daf7c
            lib_sha=49852228a93995158b2a813d4df487d47a1b76b0eaa894507ef49e91b6d7954a
            ;;
        *) die "ort_fetch: no ONNX Runtime wheel known for architecture '$arch' (x86_64, aarch64)" ;;
    esac
    local lib="$dest/libonnxruntime.so.$ORT_VERSION"
    if [ -f "$lib" ] && [ "$(sha256 "$lib")" = "$lib_sha" ]; then
        ok "ONNX Runtime $ORT_VERSION ($arch): $lib"
        return 0
    fi
    step "installing ONNX Runtime $ORT_VERSION ($arch) from the PyPI wheel into $dest"
    local tmp got
    tmp=$(mktemp -d)
    # `die` exits the shell, which skips RETURN traps: the temporary directory is removed on each path.
    if ! python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
        --python-version 3.11 --implementation cp --platform "manylinux_2_28_$arch" \
        -d "$tmp" "onnxruntime==$ORT_VERSION"; then
        rm -rf "$tmp"
        die "pip could not download onnxruntime==$ORT_VERSION for manylinux_2_28_$arch from PyPI"
    fi
    if [ ! -f "$tmp/$wheel" ]; then
        got=$(ls "$tmp")
        rm -rf "$tmp"
        die "pip did not download $wheel (got: $got)"
    fi
    got=$(sha256 "$tmp/$wheel")
    if [ "$got" != "$wheel_sha" ]; then
        rm -rf "$tmp"
        die "$wheel: SHA-256 $got, expected $wheel_sha; refusing it"
    fi
    python3 - "$tmp/$wheel" "$tmp/lib" "$ORT_VERSION" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, open(sys.argv[2], "wb") as out:
    out.write(z.read(f"onnxruntime/capi/libonnxruntime.so.{sys.argv[3]}"))
PY
    got=$(sha256 "$tmp/lib")
    if [ "$got" != "$lib_sha" ]; then
        rm -rf "$tmp"
        die "libonnxruntime.so from $wheel: SHA-256 $got, expected $lib_sha"
    fi
    mkdir -p "$dest"
    chmod 0644 "$tmp/lib"
    mv "$tmp/lib" "$lib"
    rm -rf "$tmp"
    ok "ONNX Runtime $ORT_VERSION ($arch): $lib"
}

# --- ARM64 cross build ---------------------------------------------------------------------------
# arm64_sysroot: the Debian bookworm arm64 sysroot scripts/cross-arm64 builds (GStreamer, SQLite and
# their dependency closure, unpacked, never installed); the arm64 binary runs under
# `qemu-aarch64 -L "$(arm64_sysroot)"`.
arm64_sysroot() { printf '%s\n' "$VIGIL_CACHE/sysroot-arm64"; }

# arm64_ort_dir: where scripts/cross-arm64 puts the aarch64 ONNX Runtime library.
arm64_ort_dir() { printf '%s\n' "$VIGIL_CACHE/onnxruntime/$ORT_VERSION-aarch64"; }
