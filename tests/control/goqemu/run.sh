#!/usr/bin/env bash
# run.sh TERND SRC_DIR OUT_DIR: builds tests/control/goqemu (a go-qemu QMP client) into OUT_DIR
# offline, in GOPATH mode against Debian's /usr/share/gocode, and runs it: it starts two ternd
# (TERND) and migrates a guest between them. Exit 77 (meson: skipped), with the reason, when
# the Go toolchain or go-qemu is not installed (scripts/install-deps.sh installs both).
set -euo pipefail
ternd=$1 src=$2 out=$3
gopath=${TERN_GOPATH:-/usr/share/gocode}
skip() { echo "SKIP: $*"; exit 77; }
command -v go >/dev/null || skip "no Go toolchain ('go' not on PATH): apt-get install golang-go"
[ -d "$gopath/src/github.com/digitalocean/go-qemu/qmp" ] ||
  skip "go-qemu not found in $gopath: apt-get install golang-github-digitalocean-go-qemu-dev"
mkdir -p "$out/gocache" "$out/gotmp"
bin=$out/tern-goqemu
# GOPATH mode, no module proxy, no network: only the packages Debian installed.
GO111MODULE=off GOPATH=$gopath GOFLAGS= GOPROXY=off GOCACHE=$out/gocache GOTMPDIR=$out/gotmp \
  go build -o "$bin" "$src/main.go"
echo "built $bin with $(go version)"
exec "$bin" -ternd "$ternd"
