#!/usr/bin/env bash
# Installs the real legacy client, MessagingPeer of @kynesyslabs/demosdk@2.9.1, for the interop test
# only, in test/interop/.sdk (git-ignored). A plain install of the SDK fails (its dependency tree asks
# for versions that do not exist), so: the SDK tarball unpacked without its dependencies, plus only the
# packages build/instant_messaging/index.js and what it imports need. npm registry only; idempotent,
# and a no-op once done (the stamp names every version).
set -euo pipefail
cd "$(dirname "$0")"

DIR=.sdk
SDK="@kynesyslabs/demosdk@2.9.1"
# What build/instant_messaging/index.js reaches: encryption/unifiedCrypto.js -> PQC/enigma.js,
# Cryptography.js, Hashing.js (versions as the SDK's package.json asks, the lowest that satisfies it).
DEPS='"@noble/post-quantum": "0.4.1", "@noble/hashes": "1.8.0", "node-forge": "1.3.1", "falcon-sign": "1.0.4", "@scure/bip39": "2.0.1"'
STAMP="$SDK { $DEPS }"

if [ -f "$DIR/.ready" ] && [ "$(cat "$DIR/.ready")" = "$STAMP" ]; then exit 0; fi

tmp="$DIR.tmp.$$"
rm -rf "$tmp"
mkdir -p "$tmp/demosdk"
trap 'rm -rf "$tmp"' EXIT
cat > "$tmp/package.json" <<JSON
{ "name": "demosdk-interop", "private": true, "type": "module", "dependencies": { $DEPS } }
JSON
(cd "$tmp" && npm install --no-audit --no-fund --ignore-scripts --no-package-lock --loglevel=error)
tarball=$(cd "$tmp" && npm pack "$SDK" --silent)
tar xzf "$tmp/$tarball" -C "$tmp/demosdk" --strip-components=1
rm -f "$tmp/$tarball"
test -f "$tmp/demosdk/build/instant_messaging/index.js"
echo "$STAMP" > "$tmp/.ready"
rm -rf "$DIR"
mv "$tmp" "$DIR"
trap - EXIT
echo "setup-sdk: $SDK ready in test/interop/$DIR"
