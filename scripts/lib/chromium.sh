# shellcheck shell=bash
#
# Headless Chromium for scripts/test.sh's browser tests. Sourced, not executed.
#
# chromium_ensure makes sure chromium and chromedriver are on PATH. When either is
# missing and we run as root with apt-get, it installs Debian's chromium and
# chromium-driver (and a CJK font, so the Chinese page's screenshots are legible),
# saying so. Otherwise it only says what is missing: the browser tests are never
# skipped, so they will then fail and say how to install them.

CHROMIUM_PACKAGES=(chromium chromium-driver fonts-wqy-zenhei)

chromium_present() {
    { command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; } &&
        command -v chromedriver >/dev/null 2>&1
}

chromium_ensure() {
    if chromium_present; then
        echo "test.sh: using $(chromium --version 2>/dev/null || echo chromium) with $(chromedriver --version 2>/dev/null | cut -d' ' -f1-2) for the browser tests"
        return 0
    fi
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
        echo "test.sh: chromium or chromedriver not found; installing ${CHROMIUM_PACKAGES[*]} with apt-get for the browser tests" >&2
        apt-get update || echo "test.sh: warning: apt-get update failed; trying the install anyway" >&2
        if DEBIAN_FRONTEND=noninteractive apt-get install -y "${CHROMIUM_PACKAGES[@]}"; then
            echo "test.sh: installed ${CHROMIUM_PACKAGES[*]}"
        else
            echo "test.sh: error: apt-get install ${CHROMIUM_PACKAGES[*]} failed; the browser tests will fail" >&2
        fi
    else
        echo "test.sh: warning: chromium or chromedriver not found and cannot install them (not root, or no apt-get); the browser tests will fail: install chromium and chromium-driver" >&2
    fi
}
