# Sourced by scripts/venv and scripts/test: install Debian packages with apt-get, as
# root or through sudo, refreshing the package lists only when an install needs it
# (a fresh machine has none).

apt_install() {
    (($#)) || return 0
    local sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        if ! command -v sudo >/dev/null 2>&1; then
            echo "scripts: need root or sudo to run: apt-get install $*" >&2
            return 1
        fi
        sudo=(sudo)
    fi
    echo "scripts: installing $* with apt-get" >&2
    export DEBIAN_FRONTEND=noninteractive
    if ! "${sudo[@]}" apt-get install -y -q --no-install-recommends "$@"; then
        "${sudo[@]}" apt-get update -q
        "${sudo[@]}" apt-get install -y -q --no-install-recommends "$@"
    fi
}
