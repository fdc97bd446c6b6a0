#!/usr/bin/env bash
# The RustSec advisory database for `cargo deny`, which CI cannot fetch (no internet).
#   bash .ci/advisory-db.sh unpack          # CI: unpack the vendored snapshot where cargo-deny looks
#   bash .ci/advisory-db.sh pack <clone>    # refresh the snapshot from a clone of
#                                           # https://github.com/rustsec/advisory-db (then update
#                                           # the commit and date noted in deny.toml)
set -euo pipefail
cd "$(dirname "$0")/.."
snapshot=.ci/rustsec-advisory-db.tar.gz
# cargo-deny's directory for the default database URL under deny.toml's db-path.
target=target/advisory-dbs/advisory-db-3157b0e258782691

case "${1:-}" in
  unpack)
    rm -rf "$target"
    mkdir -p "$target"
    tar -xzf "$snapshot" -C "$target" --strip-components=1
    # cargo-deny reads the database from a git work tree.
    git -C "$target" init -q
    git -C "$target" add -A
    git -C "$target" -c user.name=ci -c user.email=ci@localhost commit -qm "vendored snapshot"
    ;;
  pack)
    clone="${2:?the path of an advisory-db clone}"
    git -C "$clone" archive --format=tar.gz --prefix=advisory-db/ HEAD crates LICENSE.txt README.md > "$snapshot"
    echo "packed $(git -C "$clone" rev-parse HEAD) ($(git -C "$clone" show -s --format=%cs HEAD)); note it in deny.toml"
    ;;
  *)
    echo "usage: $0 unpack | pack <advisory-db clone>" >&2
    exit 2
    ;;
esac
