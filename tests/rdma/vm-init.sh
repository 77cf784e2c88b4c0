#!/bin/sh
# /init of the soft-RoCE test VM (tests/rdma/vm.sh): loads rdma_rxe (and kvm_amd with SVM), mounts the host root
# (read-only 9p) and the job dir, sets up rxe0 on a dummy netdev, chroots into the host root and
# runs the job's command; writes its exit status to the job dir and powers off.
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in virtio_pci 9pnet_virtio 9p crc32_generic rdma_rxe ib_uverbs rdma_ucm veth; do
  modprobe $m || echo "[init] modprobe $m failed"
done
# /dev/kvm for the kvm suite: where the CPU model has SVM (vm.sh --kvm), kvm_amd loads.
if grep -qw svm /proc/cpuinfo; then modprobe kvm_amd || echo "[init] modprobe kvm_amd failed"; fi
modprobe dummy numdummies=0
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000,cache=loose hostroot /host ||
  { echo "[init] cannot mount the host root"; poweroff -f; }
mkdir -p /job
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 job /job
mount -t proc proc /host/proc
mount -t sysfs sys /host/sys
mount -t devtmpfs dev /host/dev
mkdir -p /host/dev/hugepages 2>/dev/null
mount -t tmpfs tmp /host/tmp
mount -t tmpfs run /host/run 2>/dev/null
mkdir -p /host/tmp/job && mount --bind /job /host/tmp/job
# The build tree again, at its own path (it may live under the /tmp or /run just hidden).
tree=$(cat /job/tree 2>/dev/null)
if [ -n "$tree" ] && [ "$tree" != / ]; then
  mkdir -p "/host$tree" 2>/dev/null
  mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000,cache=loose tree "/host$tree" ||
    echo "[init] cannot mount the build tree $tree"
fi
mount -t hugetlbfs none /host/dev/hugepages 2>/dev/null
mount -t tmpfs shm /host/dev/shm 2>/dev/null
ip link set lo up
# MTU 9000 gives RoCE a 4096-byte path MTU (1024 at 1500): a quarter of the packets, each
# with its software ICRC, which is most of what rxe costs under an emulated CPU.
ip link add rxenet type dummy && ip link set rxenet mtu 9000 &&
  ip addr add 10.77.0.1/24 dev rxenet && ip link set rxenet up
chroot /host /usr/bin/rdma link add rxe0 type rxe netdev rxenet ||
  echo "[init] rdma link add failed"
echo "[init] up: $(cat /proc/uptime | cut -d' ' -f1) s since boot"
chroot /host /bin/bash -c '. /tmp/job/env; export TERN_RDMA_IP=${TERN_RDMA_IP:-10.77.0.1}
  export GTEST_COLOR=no HOME=/tmp PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
  ulimit -l unlimited; . /tmp/job/cwd; bash /tmp/job/cmd'
echo $? >/job/rc
sync
umount /job
poweroff -f
