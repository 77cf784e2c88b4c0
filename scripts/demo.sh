#!/usr/bin/env bash
# tern demo: installs missing packages, builds, then live-migrates a running guest (thread guest,
# or with --guest kvm a KVM virtual machine) between
# two ternd daemons on this host (destination first, then source), with ternctl's progress bar
# and a final summary: both sides' query-migrate figures, postcopy fault latency, and the
# destination's check of every page. Exits non-zero if the migration fails or a page mismatches.
set -uo pipefail

usage() {
  cat <<'TXT'
usage: scripts/demo.sh [options]

  --transport T      tcp, rdma, dpdk (default: what tern picks for this host, printed)
  --postcopy         start in precopy, switch to postcopy after the first round (or ~1 s;
                     with --guest kvm as soon as precopy is under way)
  --preempt          postcopy-preempt: urgent pages cut into huge pages (implies --postcopy)
  --guest KIND       vmm (default: the thread guest in VMM processes of its own,
                     tern-thread-vmm, attached to each ternd through libtern-vmm, as any VMM
                     would: docs/embedding.md), threads (the same guest inside ternd), kvm (a KVM virtual machine
                     running tern's guest program inside ternd; needs /dev/kvm) or kvm-vmm
                     (that KVM guest in VMM processes of its own, tern-kvm-vmm)
  --ram SIZE         guest RAM (default 1G; 256M with --guest kvm)
  --page-size P      4K (default) or 2M (hugetlb pages are reserved for both sides)
  --vcpus N          guest vCPUs (default 2)
  --dirty-rate R     page writes per second per vCPU while migrating (default 20000; 2000
                     with --guest kvm, sized for hosts that emulate guest code)
  --channels N       bulk channels, multifd-channels (default 2)
  --tls              x509 as well, with throwaway credentials (ternd --tls-creds): TLS 1.3
                     on every tcp channel; on dpdk and rdma a TLS 1.3 handshake per channel
                     keys the sealed control channel, page data stays in clear
                     (docs/security.md)
  --json             print one JSON object on stdout (everything else goes to stderr):
                     {"source": query-migrate, "destination": query-migrate,
                      "verification": {...}, "transport": {...}}

environment:
  TERN_BUILD_DIR     build directory (default build)
  TERN_NO_DEPS=1     do not check or install Debian packages
TXT
}

transport="" postcopy=0 preempt=0 ram="" page=4K vcpus=2 rate="" channels=2 json=0 guest=vmm tls=0
while [ $# -gt 0 ]; do
  case $1 in
    --transport) transport=${2:?--transport needs a value}; shift ;;
    --postcopy) postcopy=1 ;;
    --preempt) preempt=1; postcopy=1 ;;
    --guest) guest=${2:?--guest needs threads or kvm}; shift ;;
    --ram) ram=${2:?--ram needs a size}; shift ;;
    --page-size) page=${2:?--page-size needs 4K or 2M}; shift ;;
    --vcpus) vcpus=${2:?--vcpus needs a number}; shift ;;
    --dirty-rate) rate=${2:?--dirty-rate needs a number}; shift ;;
    --channels) channels=${2:?--channels needs a number}; shift ;;
    --json) json=1 ;;
    --tls) tls=1 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "demo.sh: unknown option '$1'" >&2; usage >&2; exit 2 ;;
  esac
  shift
done

. "$(dirname "$0")/lib.sh"  # cds to the repository root

# In --json mode stdout carries the JSON object only; everything else goes to stderr.
if [ $json -eq 1 ]; then exec 3>&2; else exec 3>&1; fi
say() { printf '%s\n' "$*" >&3; }

case $guest in
  threads | vmm) : "${ram:=1G}" "${rate:=20000}" ;;
  kvm | kvm-vmm)
    : "${ram:=256M}" "${rate:=2000}"
    [ -r /dev/kvm ] && [ -w /dev/kvm ] ||
      die "--guest kvm needs /dev/kvm (read-write); this host has none: use --guest threads"
    ;;
  *) die "--guest must be threads, vmm, kvm or kvm-vmm, got '$guest'" ;;
esac
case $page in
  4K | 4k) page=4K ;;
  2M | 2m) page=2M ;;
  *) die "--page-size must be 4K or 2M, got '$page'" ;;
esac
ram_bytes=$(numfmt --from=iec "${ram%[bB]}" 2>/dev/null) || die "--ram: bad size '$ram'"
[[ $vcpus =~ ^[0-9]+$ ]] || die "--vcpus must be a number, got '$vcpus'"
[[ $rate =~ ^[0-9]+$ ]] || die "--dirty-rate must be a number, got '$rate'"
[[ $channels =~ ^[0-9]+$ ]] || die "--channels must be a number, got '$channels'"

# 1. Packages and build.
if [ "${TERN_NO_DEPS:-0}" != 1 ] && [ -x scripts/install-deps.sh ]; then
  scripts/install-deps.sh >&3 || die "installing packages failed"
fi
build=${TERN_BUILD_DIR:-build}
if [ ! -f "$build/build.ninja" ]; then
  say "configuring $build/"
  meson_setup "$build" >&3 || die "meson setup $build failed"
fi
say "building (ninja -C $build -j2)"
log=$(mktemp)
if ! ninja -C "$build" -j2 >"$log" 2>&1; then
  tail -n 40 "$log" >&2
  rm -f "$log"
  die "build failed"
fi
rm -f "$log"
ternd=$build/control/ternd
ternctl=$build/control/ternctl
[ -x "$ternd" ] || die "$ternd was not built (meson left it out: see 'meson setup $build')"

# 2. Transport and URI.
if [ -z "$transport" ]; then
  choice=$("$ternd" --print-default-transport) || die "ternd --print-default-transport failed"
  transport=${choice%%:*}
  reason=${choice#*: }
else
  reason="chosen with --transport"
fi
case $transport in
  loopback) die "the loopback transport joins two engines inside one process (tests only); use --transport tcp" ;;
  # memif between the two ternd processes; the socket name is abstract (no file to clean up).
  dpdk) listen_uri="dpdk:net_memif0,socket=/run/tern-demo-$$.sock" ;;
  *) listen_uri="$transport:127.0.0.1:0" ;;
esac
say "transport: $transport ($reason)"

# 3. Huge pages for 2M guests: both guests live on this host.
hugepages_before="" hugepages_set=""
if [ $page = 2M ]; then
  per_side=$(( (ram_bytes + (2 << 20) - 1) / (2 << 20) ))
  need=$(( 2 * per_side ))
  free_pages=$(awk '/^HugePages_Free:/ {print $2}' /proc/meminfo)
  if [ "$free_pages" -lt "$need" ]; then
    hugepages_before=$(cat /proc/sys/vm/nr_hugepages)
    want=$(( hugepages_before + need - free_pages ))
    hugepages_set=$want
    say "reserving 2 MiB hugetlb pages: $need needed ($per_side per guest, source and destination), $free_pages free; setting /proc/sys/vm/nr_hugepages $hugepages_before -> $want"
    echo "$want" | as_root tee /proc/sys/vm/nr_hugepages >/dev/null ||
      die "cannot write /proc/sys/vm/nr_hugepages (run as root)"
    free_pages=$(awk '/^HugePages_Free:/ {print $2}' /proc/meminfo)
    [ "$free_pages" -ge "$need" ] ||
      die "the kernel gave only $free_pages free 2 MiB pages, $need needed (memory fragmented? try a smaller --ram)"
  else
    say "hugetlb: $need 2 MiB pages needed ($per_side per guest), $free_pages free: nothing to reserve"
  fi
fi

# 4. Daemons, each on its own socket in a temp dir; stopped on exit.
tmp=$(mktemp -d /tmp/tern-demo.XXXXXX)
dst_pid="" src_pid=""
cleanup() {
  local pid
  for sock in "$tmp/src.sock" "$tmp/dst.sock"; do
    [ -S "$sock" ] && "$ternctl" --socket "$sock" --timeout 5 quit >/dev/null 2>&1
  done
  for pid in $src_pid $dst_pid $src_vmm_pid $dst_vmm_pid; do
    for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  done
  # Give the reserved pages back, unless someone else changed the pool meanwhile.
  if [ -n "$hugepages_before" ] && [ "$(cat /proc/sys/vm/nr_hugepages)" = "$hugepages_set" ]; then
    echo "$hugepages_before" | as_root tee /proc/sys/vm/nr_hugepages >/dev/null &&
      say "restored /proc/sys/vm/nr_hugepages to $hugepages_before"
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Waits for a daemon's socket; on death, shows its log and fails.
wait_socket() {
  local pid=$1 sock=$2 name=$3
  for _ in $(seq 1 300); do
    [ -S "$sock" ] && return 0
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 20 "$tmp/$name.log" >&2
      die "$name ternd exited before opening its socket"
    fi
    sleep 0.1
  done
  die "$name ternd did not open $sock within 30 s"
}

spec="vcpus=$vcpus,ram=$ram,page=$page,wss=25%,rate=$rate,pattern=random,seed=1"
dst_attach=() src_guest=(--guest "$guest,$spec") src_vmm_pid="" dst_vmm_pid=""
vmm_name=""
[ $guest = vmm ] && vmm_name=tern-thread-vmm
[ $guest = kvm-vmm ] && vmm_name=tern-kvm-vmm
if [ -n "$vmm_name" ]; then  # each guest in a VMM process of its own, attached to its ternd
  vmm=$build/vm/$vmm_name
  [ -x "$vmm" ] || die "$vmm was not built"
  dst_attach=(--attach-socket "$tmp/dst.att") src_guest=(--attach-socket "$tmp/src.att")
  "$vmm" --attach "$tmp/dst.att" --incoming --spec "ram=$ram,page=$page" >"$tmp/dst-vmm.log" 2>&1 &
  dst_vmm_pid=$!
  "$vmm" --attach "$tmp/src.att" --spec "$spec" >"$tmp/src-vmm.log" 2>&1 &
  src_vmm_pid=$!
fi
# Both sides prove they know this throwaway key on every channel (docs/security.md).
make_throwaway_key "$tmp/demo.psk"
trust=(--auth-key-file "$tmp/demo.psk")
if [ $tls -eq 1 ]; then  # and TLS 1.3 with a throwaway CA and both pairs, shared by both sides
  make_throwaway_tls "$tmp/x509" || die "cannot make TLS credentials (is openssl installed?)"
  trust+=(--tls-creds "$tmp/x509")
fi
"$ternd" --socket "$tmp/dst.sock" --workers 1 "${trust[@]}" \
  --incoming "$listen_uri" "${dst_attach[@]}" 2>"$tmp/dst.log" &
dst_pid=$!
wait_socket "$dst_pid" "$tmp/dst.sock" dst
uri=$("$ternctl" --socket "$tmp/dst.sock" incoming) || die "cannot read the destination's URI"
say "destination: ternd --incoming $listen_uri, listening on $uri"

"$ternd" --socket "$tmp/src.sock" --workers 1 "${trust[@]}" \
  "${src_guest[@]}" 2>"$tmp/src.log" &
src_pid=$!
wait_socket "$src_pid" "$tmp/src.sock" src
if [ -n "$vmm_name" ]; then
  say "source:      ternd --attach-socket, guest in VMM process $src_vmm_pid ($vmm_name --spec $spec)"
else
  say "source:      ternd --guest $guest,$spec"
fi
mode=precopy
[ $postcopy -eq 1 ] && mode=postcopy
[ $preempt -eq 1 ] && mode="postcopy + preempt"
say "migrating ($mode, $channels bulk channels) ..."

# 5. Migrate with the progress bar (on stderr in --json mode).
args=(migrate "$uri" --channels "$channels" --wait)
# A KVM guest here dirties little (its code may be emulated) and precopy would converge before
# the switch: switch at once, so that its vCPUs really fault pages in through userfaultfd.
postcopy_after=1
[ $guest = kvm ] || [ $guest = kvm-vmm ] && postcopy_after=0
[ $postcopy -eq 1 ] && args+=(--postcopy --postcopy-after $postcopy_after)
[ $preempt -eq 1 ] && args+=(--preempt)
# x509 over dpdk: its URI names no host, so the source names the destination's certificate.
if [ $tls -eq 1 ] && [ "${uri%%:*}" != tcp ]; then
  "$ternctl" --socket "$tmp/src.sock" raw migrate-set-parameters '{"tls-hostname": "localhost"}' >/dev/null ||
    die "cannot set tls-hostname on the source"
fi
"$ternctl" --socket "$tmp/src.sock" "${args[@]}" >&3
migrate_rc=$?

# 6. Summary (the JSON object alone on stdout with --json).
say ""
summary=(--socket "$tmp/src.sock" summary --destination "$tmp/dst.sock" --uri "$uri"
         --transport-reason "$reason")
if [ $json -eq 1 ]; then
  "$ternctl" --json "${summary[@]}"
else
  "$ternctl" "${summary[@]}"
fi
summary_rc=$?
if [ $migrate_rc -ne 0 ] || [ $summary_rc -ne 0 ]; then
  for side in src dst; do
    echo "---- $side ternd log (last lines) ----" >&2
    tail -n 15 "$tmp/$side.log" >&2
  done
  exit 1
fi
exit 0
