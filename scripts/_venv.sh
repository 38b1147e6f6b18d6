# Shared by scripts/demo and scripts/test: the system packages and the virtual environment.
# Usage: . scripts/_venv.sh EXTRAS  (EXTRAS like "" or "[dev,postgres]")
# WRITGATE_APT_EXTRA may list more "command:package" pairs (the package is installed when the
# command is missing).

need_apt=()
for pair in git:git bwrap:bubblewrap "${WRITGATE_APT_EXTRA[@]:-}"; do
    [ -n "$pair" ] || continue
    command -v "${pair%%:*}" >/dev/null 2>&1 || need_apt+=("${pair#*:}")
done
# Sandboxed agents and validation run the system's Python, not the virtual environment's.
[ -x /usr/bin/python3 ] || need_apt+=(python3)
if [ "${#need_apt[@]}" -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then
        echo "installing system packages: ${need_apt[*]}"
        apt-get -o DPkg::Lock::Timeout=600 update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
            "${need_apt[@]}" >/dev/null
    else
        echo "missing system packages (install them as root): ${need_apt[*]}" >&2
        exit 1
    fi
fi

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
pip_log=$(mktemp)
if ! { .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip &&
       .venv/bin/python -m pip install -q --disable-pip-version-check -e ".$1"; } >"$pip_log" 2>&1
then
    grep -v '^WARNING: Location' "$pip_log" >&2 || true
    echo "installing writgate$1 failed" >&2
    exit 1
fi
rm -f "$pip_log"
.venv/bin/python -c "import writgate" || { echo "installation failed" >&2; exit 1; }
