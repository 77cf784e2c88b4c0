#include "vm/vmm_serve.h"

#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <memory>
#include <vector>

#include "attach/tern-vmm.h"

namespace tern {
namespace {

// The callbacks' opaque: the guest, its self check and a scratch bitmap for dirty syncs.
struct Vmm {
  Guest* guest = nullptr;
  SelfCheck* check = nullptr;
  std::unique_ptr<MigrationBitmap> dirty;  // one bit per 4 KiB page of each block
  tern_vmm* attached = nullptr;
};

Vmm& self(void* p) { return *static_cast<Vmm*>(p); }

int fail(void* p, const Status& s) {
  if (self(p).attached != nullptr && !s) tern_vmm_fail(self(p).attached, s.message().c_str());
  return s.is_ok() ? 0 : -1;
}

template <typename T>
T* malloc_copy(const T* data, size_t n) {
  T* out = static_cast<T*>(std::malloc(n * sizeof(T) + 1));
  if (out != nullptr && n != 0) std::memcpy(out, data, n * sizeof(T));
  return out;
}

// Moves the pages collected in `dirty` into the attach bitmap (the blocks in order, each
// starting on a word), word by word; returns the pages moved.
int64_t move_dirty(MigrationBitmap& dirty, uint64_t* bitmap, uint64_t words) {
  int64_t n = 0;
  uint64_t first_word = 0;
  for (size_t b = 0; b < dirty.blocks(); ++b) {
    AtomicBitmap& m = dirty.block(b);
    for (size_t i = m.find_next_set(0); i < m.size(); i = m.find_next_set(i + 1)) {
      const uint64_t w = first_word + i / 64;
      if (w >= words) break;
      m.clear(i);
      bitmap[w] |= uint64_t{1} << (i % 64);
      ++n;
    }
    first_word += (m.size() + 63) / 64;
  }
  return n;
}

bool valid_vcpu(void* p, uint32_t vcpu) {
  if (vcpu < self(p).guest->dirty_limit_vcpus()) return true;
  fail(p, Status(Code::kNotFound, "no vCPU " + std::to_string(vcpu) + " with a dirty ring"));
  return false;
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
    return move_dirty(*v.dirty, bitmap, words);
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
    if (!valid_vcpu(p, vcpu)) return -1;
    self(p).guest->set_ring_full_penalty(vcpu, us);
    return 0;
  };
  o.ring_counters = [](void* p, uint32_t vcpu, uint64_t out[7]) {
    if (!valid_vcpu(p, vcpu)) return -1;
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
    SelfCheck& c = *self(p).check;
    VerifyReport r = full ? c.verify() : c.verify_counters();
    if (full) {
      VerifyReport t = c.verify_counters();
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
// the RAM through it at the postcopy switch. With `want_minor`, minor faults on shmem and
// hugetlbfs too where the kernel has them (Linux >= 5.13; `minor` says whether it did): ternd
// then places pages zero-copy (attach capability minor-faults). A kernel refuses an UFFDIO_API
// it cannot grant whole, and a userfaultfd takes one UFFDIO_API: so a fresh fd for each try.
struct OpenedUffd {
  int fd = -1;
  bool minor = false;
};
Result<OpenedUffd> open_userfaultfd(bool want_minor) {
  constexpr uint64_t kMissing = UFFD_FEATURE_MISSING_HUGETLBFS | UFFD_FEATURE_MISSING_SHMEM;
#ifdef UFFD_FEATURE_MINOR_SHMEM
  constexpr uint64_t kMinor = UFFD_FEATURE_MINOR_SHMEM | UFFD_FEATURE_MINOR_HUGETLBFS;
#else
  constexpr uint64_t kMinor = 0;
#endif
  int err = 0;
  for (uint64_t features : {kMissing | kMinor, kMissing}) {
    if ((features & kMinor) && (!want_minor || kMinor == 0)) continue;
    int fd = static_cast<int>(syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK));
    if (fd < 0)
      return errno_status("userfaultfd(2) (run as root or set vm.unprivileged_userfaultfd=1)");
    uffdio_api api{};
    api.api = UFFD_API;
    api.features = features;
    if (ioctl(fd, UFFDIO_API, &api) == 0) return OpenedUffd{fd, (features & kMinor) != 0};
    err = errno;
    close(fd);
  }
  return errno_status("UFFDIO_API with hugetlbfs and shmem missing faults", err);
}

}  // namespace

void add_vmm_options(CLI::App& app, VmmOptions& o) {
  app.add_option("--attach", o.socket, "ternd's attach socket (ternd --attach-socket)")->required();
  app.add_option("--spec", o.spec, "workload (vm/workload.h): vcpus=2,ram=64M,page=4K,rate=...");
  app.add_flag("--incoming", o.incoming, "a destination VMM: RAM for the guest to come");
  app.add_flag("--reattach", o.reattach,
               "source: after ternd goes away, attach again (a new ternd) while the guest runs");
  app.add_flag("--minor-faults,!--no-minor-faults", o.minor_faults,
               "destination: offer ternd a userfaultfd with minor faults, for zero-copy postcopy "
               "placement (default on where the kernel has them)");
  app.add_flag("!--no-postcopy", o.postcopy,
               "destination: hand over no userfaultfd (a VMM without postcopy)");
}

int serve_vmm(const std::string& program, Guest& g, SelfCheck& check, uint32_t vcpus,
              const VmmOptions& o) {
  std::vector<tern_vmm_region> regions;
  std::vector<uint32_t> target_pages;
  std::vector<uint64_t> sizes;
  uint64_t gpa = 0;
  for (RamBlock* b : g.ram()) {
    if (b->fd() < 0) {
      std::cerr << program << ": RAM block '" << b->name() << "' is not file-backed\n";
      return 1;
    }
    regions.push_back({b->name().c_str(), b->fd(), b->fd_offset(), b->size(), gpa, b->base(),
                       b->host_page_size()});
    gpa += b->size();
    target_pages.push_back(kSmallPage);
    sizes.push_back(b->size());
  }
  OpenedUffd uffd;
  if (o.incoming && o.postcopy) {
    auto u = open_userfaultfd(o.minor_faults);
    if (!u) std::cerr << program << ": no postcopy: " << u.status().message() << "\n";
    if (u) uffd = *u;
  }
  Vmm vmm;
  vmm.guest = &g;
  vmm.check = &check;
  vmm.dirty = std::make_unique<MigrationBitmap>(target_pages, sizes);
  const std::string description =
      program + (o.incoming ? " (incoming)" : ": " + g.describe());
  tern_vmm_config c{};
  c.role = o.incoming ? TERN_VMM_DESTINATION : TERN_VMM_SOURCE;
  c.capabilities = TERN_VMM_CAP_STATE | TERN_VMM_CAP_SELF_CHECK;
  if (o.incoming && uffd.fd >= 0) c.capabilities |= TERN_VMM_CAP_POSTCOPY;
  if (o.incoming && uffd.minor) c.capabilities |= TERN_VMM_CAP_MINOR_FAULTS;
  if (!o.incoming) {
    c.capabilities |= TERN_VMM_CAP_DIRTY_LOG;
    if (g.dirty_limit_vcpus() > 0) c.capabilities |= TERN_VMM_CAP_THROTTLE;
    if (g.reports_free_pages()) c.capabilities |= TERN_VMM_CAP_FREE_PAGES;
  }
  c.vcpus = o.incoming ? 0 : vcpus;
  c.description = description.c_str();
  c.regions = regions.data();
  c.n_regions = regions.size();
  c.userfaultfd = uffd.fd;
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
  if (uffd.fd >= 0) close(uffd.fd);
  return rc == 0 ? 0 : 1;
}

}  // namespace tern
