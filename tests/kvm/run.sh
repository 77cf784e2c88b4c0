#!/usr/bin/env bash
# Runs the kvm suite's test binary (meson suite 'kvm'): natively where /dev/kvm opens, else
# inside the throwaway TCG VM of tests/rdma/vm.sh with emulated AMD SVM (vm.sh --kvm: kvm_amd
# loads there, the binary meets a real KVM nested in the emulated CPU). Exits with the binary's
# status. TERN_KVM_VM=never skips (exit 77) instead of booting a VM; =always forces the VM.
# In the VM, guests are small (TERN_TEST_SCALE=tiny, or TERN_KVM_VM_SCALE: full = the native
# sizes, expect many minutes) and the whole run is bounded by TERN_KVM_VM_TIMEOUT (s, 840).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
[ $# -ge 1 ] || { echo "usage: $0 TEST_BINARY [ARGS...]" >&2; exit 2; }
mode=${TERN_KVM_VM:-auto}
case $mode in auto|never|always) ;; *) echo "TERN_KVM_VM=$mode: auto, never or always" >&2; exit 2 ;; esac

if [ "$mode" != always ] && { exec 3<>/dev/kvm; } 2>/dev/null; then
  exec 3>&-
  echo "[kvm] /dev/kvm opens here: running natively"
  exec "$@"
fi
if [ "$mode" = never ]; then
  echo "no usable /dev/kvm on this host and TERN_KVM_VM=never: not booting the nested-KVM VM"
  exit 77
fi
scale=${TERN_KVM_VM_SCALE:-tiny}
[ "$scale" = full ] && scale=
echo "[kvm] running $(basename "$1") on KVM nested in the TCG VM (scale ${scale:-full})"
exec env TERN_TEST_SCALE="$scale" "$here/../rdma/vm.sh" --kvm \
  --timeout "${TERN_KVM_VM_TIMEOUT:-840}" -- "$@"
