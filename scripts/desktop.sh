#!/usr/bin/env bash
# The desktop app's setup, sourced by run.sh and desktop-test.sh after setup.sh: Debian's Tauri 2
# build dependencies (and, for tests, Xvfb, WebKitWebDriver and Chromium), then the UI built
# into ui/dist (which the Tauri build embeds). Idempotent: apt only for what is missing, `npm ci`
# only when node_modules is older than the lock file.

# desktop_deps [test]: installs what building (and testing) the desktop app needs.
desktop_deps() {
  local pkgs=(libwebkit2gtk-4.1-dev libgtk-3-dev libsoup-3.0-dev libjavascriptcoregtk-4.1-dev librsvg2-dev
    libayatana-appindicator3-dev libxdo-dev libssl-dev file)
  if [ "${1:-}" = test ]; then pkgs+=(xvfb xauth webkit2gtk-driver chromium); fi
  local missing=() p
  for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  if [ "$(id -u)" -eq 0 ]; then
    echo "desktop: installing ${missing[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "desktop: please install: ${missing[*]} (sudo apt-get install --no-install-recommends ...)" >&2
    return 1
  fi
}

# build_ui: ui/node_modules from the lock file, then ui/dist.
build_ui() {
  local ui="$repo/ui"
  if [ ! -d "$ui/node_modules" ] || [ "$ui/package-lock.json" -nt "$ui/node_modules" ]; then
    (cd "$ui" && npm ci --no-audit --no-fund --loglevel=error && touch node_modules)
  fi
  (cd "$ui" && npm run --silent build -- --logLevel warn)
}
