// tern-thread-vmm: the thread guest (vm/thread_guest.h) as a VMM process of its own, which hands
// its guest to ternd through libtern-vmm only (attach/tern-vmm.h, the C API any VMM uses).
//
//   source:      tern-thread-vmm --attach SOCK --spec vcpus=2,ram=256M,page=4K [--prefill]
//   destination: tern-thread-vmm --attach SOCK --incoming --spec ram=256M,page=4K
//
// Its RAM is one memfd (hugetlb for 2M pages); the destination creates a userfaultfd and hands
// it over for postcopy. It serves ternd until ternd detaches or goes away; with --reattach it
// then attaches again (a new ternd on the same socket) while its guest keeps running. Prints one
// line per event on stdout ("attached", "detached: ...").
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <memory>

#include "attach/tern-vmm.h"
#include "vm/thread_guest.h"
#include "vm/workload.h"

namespace tern {
namespace {

// The callbacks' opaque: the guest and its scratch bitmap for dirty syncs.
struct Vmm {
  ThreadGuest* guest = nullptr;
  std::unique_ptr<MigrationBitmap> dirty;  // one bit per 4 KiB page of block 0
  tern_vmm* attached = nullptr;
};

Vmm& self(void* p) { return *static_cast<Vmm*>(p); }

int fail(void* p, const Status& s) {
  if (self(p).attached != nullptr) tern_vmm_fail(self(p).attached, s.message().c_str());
  return s.is_ok() ? 0 : -1;
}

template <typename T>
T* malloc_copy(const T* data, size_t n) {
  T* out = static_cast<T*>(std::malloc(n * sizeof(T) + 1));
  if (out != nullptr && n != 0) std::memcpy(out, data, n * sizeof(T));
  return out;
}

tern_vmm_ops make_ops() {
  tern_vmm_ops o{};
  o.pause = [](void* p) {
    self(p).guest->pause();
    return 0;
  };
  o.resume = [](void* p) { return fail(p, self(p).guest->start()); };
  o.dirty_log_start = [](void* p) { return fail(p, self(p).guest->start_dirty_log()); };
  o.dirty_log_stop = [](void* p) {
    self(p).guest->stop_dirty_log();
    return 0;
  };
  o.dirty_log_sync = [](void* p, uint64_t* bitmap, uint64_t words) -> int64_t {
    Vmm& v = self(p);
    v.guest->collect_dirty(*v.dirty);
    AtomicBitmap& b = v.dirty->block(0);
    int64_t n = 0;
    for (size_t i = b.find_next_set(0); i < b.size(); i = b.find_next_set(i + 1)) {
      if (i / 64 >= words) break;
      b.clear(i);
      bitmap[i / 64] |= uint64_t{1} << (i % 64);
      ++n;
    }
    return n;
  };
  o.save_state = [](void* p, void** data, size_t* len) {
    std::vector<uint8_t> s = self(p).guest->save_state();
    if (s.empty()) return fail(p, Status(Code::kInvalidArgument, "the guest is not paused"));
    *data = malloc_copy(s.data(), s.size());
    *len = s.size();
    return *data ? 0 : -1;
  };
  o.load_state = [](void* p, const void* data, size_t len) {
    const auto* b = static_cast<const uint8_t*>(data);
    return fail(p, self(p).guest->load_state(std::vector<uint8_t>(b, b + len)));
  };
  o.set_penalty = [](void* p, uint32_t vcpu, uint64_t us) {
    if (vcpu >= self(p).guest->vcpus()) return fail(p, Status(Code::kNotFound, "no such vCPU"));
    self(p).guest->set_ring_full_penalty(vcpu, us);
    return 0;
  };
  o.ring_counters = [](void* p, uint32_t vcpu, uint64_t out[7]) {
    if (vcpu >= self(p).guest->vcpus()) return fail(p, Status(Code::kNotFound, "no such vCPU"));
    DirtyRingCounters c = self(p).guest->dirty_ring_counters(vcpu);
    const uint64_t v[7] = {c.dirty_pages, c.ring_full_exits, c.ring_full_ns, c.penalty_ns,
                           c.ops,         c.last_exit_ns,    c.pages_at_last_exit};
    std::memcpy(out, v, sizeof v);
    return 0;
  };
  o.limit_tracking = [](void* p, int on) {
    return fail(p, self(p).guest->set_dirty_limit_tracking(on != 0));
  };
  o.free_pages_start = [](void* p) { return fail(p, self(p).guest->start_free_page_reporting()); };
  o.free_pages_take = [](void* p, tern_vmm_free_range** out) -> int64_t {
    std::vector<Range> r;
    self(p).guest->take_free_pages(r);
    std::vector<tern_vmm_free_range> v;
    for (const Range& x : r) v.push_back({x.block, x.offset, x.length});
    *out = malloc_copy(v.data(), v.size());
    return *out ? static_cast<int64_t>(v.size()) : -1;
  };
  o.free_pages_stop = [](void* p) {
    self(p).guest->stop_free_page_reporting();
    return 0;
  };
  o.verify = [](void* p, int full, tern_vmm_verify* out) {
    VerifyReport r = full ? self(p).guest->verify() : self(p).guest->verify_counters();
    if (full) {
      VerifyReport t = self(p).guest->verify_counters();
      r.touched_checked = t.touched_checked;
      r.touched_mismatches = t.touched_mismatches;
      if (r.first_mismatch.empty()) r.first_mismatch = t.first_mismatch;
    }
    out->pages_checked = r.pages_checked;
    out->mismatches = r.mismatches;
    out->touched_checked = r.touched_checked;
    out->touched_mismatches = r.touched_mismatches;
    std::snprintf(out->first_mismatch, sizeof out->first_mismatch, "%s",
                  r.first_mismatch.c_str());
    return 0;
  };
  return o;
}

// A userfaultfd for the destination's postcopy: created here, handed to ternd, which registers
// the RAM through it at the postcopy switch.
Result<int> open_userfaultfd() {
  int fd = static_cast<int>(syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK));
  if (fd < 0) return errno_status("userfaultfd(2) (run as root or set vm.unprivileged_userfaultfd=1)");
  uffdio_api api{};
  api.api = UFFD_API;
  api.features = UFFD_FEATURE_MISSING_HUGETLBFS | UFFD_FEATURE_MISSING_SHMEM;
  if (ioctl(fd, UFFDIO_API, &api) != 0) {
    int err = errno;
    close(fd);
    return errno_status("UFFDIO_API with hugetlbfs and shmem missing faults", err);
  }
  return fd;
}

struct Options {
  std::string socket;
  std::string spec = "vcpus=2,ram=64M";
  bool incoming = false;
  bool prefill = false;
  bool reattach = false;
};

int run(const Options& o) {
  auto spec = parse_workload(o.spec);
  if (!spec) {
    std::cerr << "tern-thread-vmm: --spec: " << spec.status().message() << "\n";
    return 2;
  }
  // The RAM is handed to ternd as a memfd, whatever the spec says.
  spec->backing = RamBacking::kMemfd;
  Result<std::unique_ptr<ThreadGuest>> guest =
      o.incoming ? ThreadGuest::create_incoming(
                       Layout{{BlockInfo{"ram", spec->ram_bytes, spec->page_size}}},
                       RamBacking::kMemfd)
                 : ThreadGuest::create(*spec);
  if (!guest) {
    std::cerr << "tern-thread-vmm: " << guest.status().message() << "\n";
    return 1;
  }
  ThreadGuest& g = **guest;
  if (!o.incoming) {
    if (o.prefill)
      if (Status s = g.prefill(); !s) return std::cerr << s.message() << "\n", 1;
    if (Status s = g.start(); !s) return std::cerr << s.message() << "\n", 1;
  }
  int uffd = -1;
  if (o.incoming) {
    auto u = open_userfaultfd();
    if (!u) std::cerr << "tern-thread-vmm: no postcopy: " << u.status().message() << "\n";
    uffd = u ? *u : -1;
  }
  Vmm vmm;
  vmm.guest = &g;
  vmm.dirty = std::make_unique<MigrationBitmap>(std::vector<uint32_t>{kSmallPage},
                                                std::vector<uint64_t>{g.block().size()});
  const std::string description = o.incoming ? "tern-thread-vmm (incoming)"
                                             : "tern-thread-vmm: " + spec->describe();
  tern_vmm_region region{"ram",           g.block().fd(), g.block().fd_offset(),
                         g.block().size(), 0,              g.block().base(),
                         g.block().host_page_size()};
  tern_vmm_config c{};
  c.role = o.incoming ? TERN_VMM_DESTINATION : TERN_VMM_SOURCE;
  c.capabilities = TERN_VMM_CAP_STATE | TERN_VMM_CAP_SELF_CHECK |
                   (o.incoming ? (uffd >= 0 ? TERN_VMM_CAP_POSTCOPY : 0)
                               : TERN_VMM_CAP_DIRTY_LOG | TERN_VMM_CAP_THROTTLE |
                                     TERN_VMM_CAP_FREE_PAGES);
  c.vcpus = o.incoming ? 0 : g.vcpus();
  c.description = description.c_str();
  c.regions = &region;
  c.n_regions = 1;
  c.userfaultfd = uffd;
  c.connect_timeout_ms = 30000;
  const tern_vmm_ops ops = make_ops();
  int rc = 1;
  do {
    char err[512];
    tern_vmm* t = tern_vmm_attach(o.socket.c_str(), &c, &ops, &vmm, err, sizeof err);
    if (t == nullptr) {
      std::cout << "attach failed: " << err << std::endl;
      break;
    }
    vmm.attached = t;
    std::cout << "attached" << std::endl;
    rc = tern_vmm_serve(t);
    std::cout << "detached: " << tern_vmm_error(t) << "; guest "
              << (g.running() ? "running" : "paused") << std::endl;
    vmm.attached = nullptr;
    tern_vmm_detach(t, "");
  } while (o.reattach && g.running());
  // A destination whose guest migrated here keeps it running until told to stop.
  if (o.incoming && g.running()) {
    std::cout << "guest running here; exiting on SIGTERM" << std::endl;
    pause();
  }
  g.pause();
  if (uffd >= 0) close(uffd);
  return rc == 0 ? 0 : 1;
}

}  // namespace
}  // namespace tern

int main(int argc, char** argv) {
  tern::Options o;
  CLI::App app{"tern-thread-vmm: a thread guest in a VMM process of its own, attached to ternd"};
  app.add_option("--attach", o.socket, "ternd's attach socket (ternd --attach-socket)")->required();
  app.add_option("--spec", o.spec, "workload (vm/workload.h): vcpus=2,ram=64M,page=4K,rate=...");
  app.add_flag("--incoming", o.incoming, "a destination VMM: RAM for the guest to come");
  app.add_flag("--prefill", o.prefill, "source: write every working-set page before starting");
  app.add_flag("--reattach", o.reattach,
               "source: after ternd goes away, attach again (a new ternd) while the guest runs");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return tern::run(o);
}
