#!/usr/bin/env bash
# Runs a command inside a throwaway QEMU VM whose Debian kernel has soft-RoCE (rdma_rxe), and
# exits with the command's status. This machine's kernel has no RDMA stack; the VM's has.
#
#   tests/rdma/vm.sh [--timeout SECONDS] [--kvm] [--] COMMAND [ARGS...]
#   tests/rdma/vm.sh --kernel    # fetch (once) and print the path of the cached vmlinux only
#                                # (tern-bench's qemu reference boots its own guest with it)
#   --kvm: the CPU model also has AMD SVM with nested paging (TCG emulates both), so the VM's
#          kvm_amd loads and /dev/kvm works inside: the kvm suite's runner (tests/kvm/run.sh).
#
# The guest sees the host's root filesystem read-only over 9p and chroots into it, so host-built
# binaries (the build tree), the host's rdma-core, perftest and iproute2 run in the guest as they
# are. Only the kernel and its modules come from Debian's linux-image package (apt-get download;
# cached with the initramfs under $TERN_RDMA_CACHE, default ~/.cache/tern/rdma-vm).
# Inside, an rxe device "rxe0" sits on a dummy netdev with 10.77.0.1/24 (TERN_RDMA_IP); /tmp
# is a tmpfs and 2 MiB hugetlb pages can be reserved.
#
# Env: TERN_RDMA_CACHE, TERN_VM_BOOT_TIMEOUT (default 300 s: a VM not up by then boots once more),
# TERN_VM_MEM (default 2G), TERN_VM_SMP (default 2), TERN_VM_ACCEL
# (default tcg: /dev/kvm here is kvm_pvm, which cannot boot a stock kernel at speed),
# TERN_VM_CPU (default an SSE4.2 qemu64, see below; --kvm adds svm and npt to it).
set -euo pipefail

timeout_s=900
kernel_only=0
kvm=0
while [ $# -gt 0 ]; do
  case $1 in
    --timeout) timeout_s=$2; shift 2 ;;
    --kernel) kernel_only=1; shift ;;
    --kvm) kvm=1; shift ;;
    --) shift; break ;;
    *) break ;;
  esac
done
[ $# -gt 0 ] || [ $kernel_only = 1 ] || { echo "usage: $0 [--timeout S] [--] COMMAND [ARGS...]" >&2; exit 2; }

cache=${TERN_RDMA_CACHE:-$HOME/.cache/tern/rdma-vm}
mkdir -p "$cache"
log() { echo "[rdma-vm] $*" >&2; }
t0=$SECONDS

for tool in qemu-system-x86_64 busybox dpkg xz cpio apt-get; do
  command -v $tool >/dev/null || { log "missing $tool (scripts/install-deps.sh installs it)"; exit 2; }
done

# --- kernel: the newest Debian linux-image-*-amd64, unpacked once -------------------------------
kpkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-/{print $2; exit}')
[ -n "$kpkg" ] || { log "cannot resolve linux-image-amd64 (apt-get update?)"; exit 2; }
kdir=$cache/$kpkg
if [ ! -f "$kdir/.done" ]; then
  log "fetching $kpkg"
  rm -rf "$kdir" && mkdir -p "$kdir"
  (cd "$kdir" && apt-get download "$kpkg" 2>&1 | grep -v '^W: Download is performed unsandboxed' >&2)
  dpkg -x "$kdir"/*.deb "$kdir/root"
  rm -f "$kdir"/*.deb
  kver=$(ls "$kdir/root/lib/modules")
  busybox depmod -b "$kdir/root" "$kver"
  # The bzImage carries an xz-compressed vmlinux: find the xz magic and unpack from there.
  bz=$kdir/root/boot/vmlinuz-$kver
  off=$(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$bz" | head -n 1 | cut -d: -f1)
  tail -c +$((off + 1)) "$bz" | xz -dc 2>/dev/null >"$kdir/vmlinux" || true
  [ -s "$kdir/vmlinux" ] || { log "could not extract vmlinux from $bz"; exit 2; }
  touch "$kdir/.done"
fi
kver=$(ls "$kdir/root/lib/modules")
if [ $kernel_only = 1 ]; then echo "$kdir/vmlinux"; exit 0; fi

# --- initramfs: busybox, the module closure, an init that chroots into the host root ------------
# Named after the scripts that shape it, so that worktrees with different versions of them
# (sharing the cache) never use or overwrite each other's initramfs.
here=$(cd "$(dirname "$0")" && pwd)
initrd=$cache/initramfs-$kver-$(cat "$0" "$here/vm-init.sh" | sha1sum | cut -c1-12).cpio
if [ ! -f "$initrd" ]; then
  log "building initramfs for $kver"
  ir=$(mktemp -d)
  trap 'rm -rf "$ir"' EXIT
  mkdir -p "$ir"/{bin,sbin,proc,sys,dev,host,tmp,lib/modules/$kver}
  cp /usr/bin/busybox "$ir/bin/busybox"
  for a in sh mount umount mkdir modprobe insmod ip sleep cat echo ls poweroff reboot chroot \
           mknod ln sync dmesg; do ln -sf busybox "$ir/bin/$a"; done
  mods="kvm kvm-amd crc32_generic rdma_rxe ib_uverbs rdma_ucm dummy veth 9p 9pnet_virtio virtio_pci"
  mroot=$kdir/root/lib/modules/$kver
  # modules.dep lists "path: deps..." (busybox depmod writes full paths relative to mroot).
  need=$(for m in $mods; do
           f=$(awk -F: -v m="/$m.ko" 'index($1, m) && substr($1, length($1) - length(m) + 1) == m {print $0; exit}' "$mroot/modules.dep")
           echo "$f" | tr ':' ' '
         done | tr ' ' '\n' | sed '/^$/d' | sort -u)
  for f in $need; do
    mkdir -p "$ir/lib/modules/$kver/$(dirname "$f")"
    cp "$mroot/$f" "$ir/lib/modules/$kver/$f"
  done
  cp "$mroot"/modules.{dep,alias,symbols,order,builtin} "$ir/lib/modules/$kver/" 2>/dev/null || true
  busybox depmod -b "$ir" "$kver"
  cp "$here/vm-init.sh" "$ir/init"
  chmod +x "$ir/init"
  (cd "$ir" && find . | cpio -o -H newc --quiet) >"$initrd.tmp"
  mv "$initrd.tmp" "$initrd"
  rm -rf "$ir"
  trap - EXIT
fi
log "kernel $kver and initramfs ready ($((SECONDS - t0)) s)"

# --- run ---------------------------------------------------------------------------------------
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
printf '%q ' "$@" >"$out/cmd"
echo >>"$out/cmd"
printf 'cd %q\n' "$PWD" >"$out/cwd"
# The working directory (the build tree) is shared on its own too: the guest mounts tmpfs on
# /tmp and /run, which would hide a tree that lives there (a CI clone in /tmp, say).
printf '%s\n' "$PWD" >"$out/tree"
env | grep -E '^(TERN_|TERND=|GTEST_)' | sed 's/^/export /' >"$out/env" || true

accel=${TERN_VM_ACCEL:-tcg,thread=multi}
# Not `-cpu max`: with AVX/AVX-512 advertised, glibc's memcpy and friends pick vector paths that
# TCG emulates slowly; an SSE4.2 model moved rxe traffic 2x faster here (9 s vs 20 s for the
# conformance suite's 256 MiB).
cpu=qemu64,+ssse3,+sse4.1,+sse4.2,+popcnt
# KVM inside (--kvm): TCG emulates AMD SVM and its nested paging; nothing else is needed (no
# AVX, for the reason above). qemu64 has svm already (kvm_amd loads in every VM of this script,
# harmlessly); without npt KVM would shadow-page the nested guest, slower still.
cpu=${TERN_VM_CPU:-$cpu}
if [ $kvm = 1 ]; then cpu=$cpu,+svm,+npt; fi
log "booting QEMU ($accel, -cpu $cpu, -smp ${TERN_VM_SMP:-2} -m ${TERN_VM_MEM:-2G})"
# One boot: QEMU's console goes to $out/console and is followed on stdout. A boot that does
# not reach "[init] up" within $boot_s (it takes 6-12 s of guest time here; a whole suite's
# run once hung in boot until the 840 s VM timeout, cause unknown) is killed: status 125.
# Else QEMU's own status (124 when the whole $timeout_s ran out).
boot_s=${TERN_VM_BOOT_TIMEOUT:-300}
boot_vm() {
  : >"$out/console"
  qemu-system-x86_64 \
    -accel "$accel" -cpu "$cpu" -smp "${TERN_VM_SMP:-2}" -m "${TERN_VM_MEM:-2G}" -nic none \
    -nographic -no-reboot -display none -serial mon:stdio \
    -kernel "$kdir/vmlinux" -initrd "$initrd" \
    -append "console=ttyS0 quiet panic=-1 loglevel=3 tsc=reliable" \
    -virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
    -virtfs local,path="$PWD",mount_tag=tree,security_model=none,readonly=on,multidevs=remap \
    -virtfs local,path="$out",mount_tag=job,security_model=none </dev/null >"$out/console" 2>&1 &
  local qpid=$! start=$SECONDS up=0 rc
  tail -n +1 -f --pid=$qpid "$out/console" &
  local tpid=$!
  while kill -0 $qpid 2>/dev/null; do
    [ $up = 1 ] || ! grep -q '\[init\] up' "$out/console" || up=1
    if { [ $up = 0 ] && [ $((SECONDS - start)) -ge "$boot_s" ]; } ||
      [ $((SECONDS - start)) -ge "$timeout_s" ]; then
      kill $qpid 2>/dev/null; sleep 2; kill -9 $qpid 2>/dev/null
      wait $qpid 2>/dev/null; wait $tpid 2>/dev/null
      if [ $up = 0 ]; then log "the VM did not come up within ${boot_s} s"; return 125; fi
      return 124
    fi
    sleep 1
  done
  wait $qpid; rc=$?
  wait $tpid 2>/dev/null
  return $rc
}
set +e
boot_vm
qrc=$?
if [ $qrc = 125 ] && [ ! -f "$out/rc" ]; then
  log "booting once more"
  boot_vm
  qrc=$?
fi
set -e
if [ -f "$out/rc" ]; then
  rc=$(cat "$out/rc")
  log "guest command exited with $rc (VM wall time $((SECONDS - t0)) s)"
  exit "$rc"
fi
log "guest did not report a status (qemu exit $qrc: 124 the ${timeout_s} s VM timeout, 125 not up within ${boot_s} s twice)"
exit 1
