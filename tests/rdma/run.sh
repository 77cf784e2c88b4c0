#!/usr/bin/env bash
# Runs one rdma test binary (the meson suite 'rdma'): natively when this host has an RDMA
# device, else inside the throwaway soft-RoCE VM of vm.sh (rxe0 on 10.77.0.1). Exits with the
# binary's status. TERN_RDMA_VM=never skips (exit 77) instead of booting a VM; =always forces it.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
[ $# -ge 1 ] || { echo "usage: $0 TEST_BINARY [ARGS...]" >&2; exit 2; }

if [ "${TERN_RDMA_VM:-auto}" != always ] && [ -n "$(ls /sys/class/infiniband 2>/dev/null)" ]; then
  echo "[rdma] RDMA device(s) here: $(ls /sys/class/infiniband | tr '\n' ' '); running natively"
  exec "$@"
fi
if [ "${TERN_RDMA_VM:-auto}" = never ]; then
  echo "no RDMA device on this host and TERN_RDMA_VM=never: not booting the soft-RoCE VM"
  exit 77
fi
echo "[rdma] no RDMA device on this host: running $(basename "$1") in the soft-RoCE VM"
exec "$here/vm.sh" --timeout "${TERN_RDMA_VM_TIMEOUT:-840}" -- "$@"
