#!/usr/bin/env bash
# Installs the Debian 12 packages tern needs to build, test and benchmark, and only those that
# are missing. Idempotent; prints nothing when everything is already installed.
set -euo pipefail

PACKAGES=(
  build-essential g++ pkg-config meson ninja-build python3
  libhwloc-dev nlohmann-json3-dev libcli11-dev libfmt-dev
  libssl-dev  # libcrypto: the channel handshake (HMAC-SHA256, nonces); libssl: TLS on tcp (docs/security.md)
  openssl  # the openssl command: throwaway x509 credentials in TLS tests, demo --tls, bench/tls_cost.sh
  libgtest-dev libgmock-dev libbenchmark-dev
  gnuplot-nox  # scripts/bench-report.sh: the plots of docs/benchmarks.md
  clang  # libFuzzer: the fuzz targets of tests/fuzz (scripts/fuzz.sh, the fuzz stage of test.sh)
  python3-cryptography  # tests/fuzz/make_seeds.py: the sealed_control seeds (AES-256-GCM)
  # tests/control/goqemu: a third-party QMP client (DigitalOcean's go-qemu) drives ternd; built
  # offline against Debian's /usr/share/gocode (GOPATH mode, no module downloads)
  golang-go golang-github-digitalocean-go-qemu-dev
  util-linux  # setarch: TSan runs tests with ASLR off on kernels with large mmap_rnd_bits
  # rdma transport (libibverbs, librdmacm) and its test VM (tests/rdma: QEMU with a Debian
  # kernel's soft-RoCE, busybox initramfs; ib_write_bw/ib_write_lat for the bench)
  libibverbs-dev librdmacm-dev rdma-core ibverbs-providers ibverbs-utils perftest iproute2
  # qemu-system-x86 is also tern-bench's QEMU reference (bench/ternbench/qemuref.py: its guest
  # kernel comes through vm.sh --kernel, its init is built with build-essential's static libc)
  qemu-system-x86 busybox-static xz-utils cpio
  libdpdk-dev  # the dpdk transport (EAL, ethdev, memif and net_ring PMDs)
  dpdk         # dpdk-testpmd: the memif forwarding reference in scripts/bench-dpdk.sh
)

. "$(dirname "$0")/lib.sh"

command -v dpkg-query >/dev/null 2>&1 || die "dpkg-query not found: tern's scripts expect Debian 12"

missing=()
for p in "${PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)
  [ "${status:0:2}" = "ii" ] || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

info "install-deps: installing missing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
as_root apt-get update -qq
as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
  "${missing[@]}" </dev/null
