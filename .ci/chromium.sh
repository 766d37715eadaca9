# Sourced by .ci/run: the Debian chromium that the web page's browser test drives through
# Playwright (tests/service/test_page.py; no `playwright install`). Installs it when missing
# and makes the test fail, not skip, when the browser cannot be started.

if [ ! -x /usr/bin/chromium ]; then
    if [ "$(id -u)" -eq 0 ]; then sudo_=(); else sudo_=(sudo); fi
    "${sudo_[@]}" apt-get update
    "${sudo_[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium
fi
export LMREC_REQUIRE_BROWSER=1
echo "chromium for the browser test: $(/usr/bin/chromium --version 2>/dev/null || echo missing)"
