# Sourced by setup.sh and test.sh: skip a step whose inputs have not changed since it last succeeded.

# fingerprint FILE_OR_DIR...: a hash of the files' contents and of the interpreter the venv runs.
fingerprint() {
    { python -c "import sys; print(sys.version)"; find "$@" -type f -print0 | sort -z | xargs -0 sha256sum; } \
        | sha256sum | cut -d' ' -f1
}

# unchanged STAMP HASH: the stamp records HASH (and OXICACHE_REBUILD=1 does not ask to redo everything).
unchanged() {
    [ "${OXICACHE_REBUILD:-0}" != 1 ] && [ -f "$1" ] && [ "$(cat "$1")" = "$2" ]
}
