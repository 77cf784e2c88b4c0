#include "control/attached_guest.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "control/format.h"
#include "control/log.h"

namespace tern::control {

using attach::MsgType;

Result<std::unique_ptr<AttachedGuest>> AttachedGuest::create(Parts parts) {
  std::unique_ptr<AttachedGuest> g(new AttachedGuest(std::move(parts)));
  if (g->bitmap_fd_.get() >= 0) {
    std::vector<uint64_t> sizes;
    for (const auto& r : g->regions_) sizes.push_back(r.size);
    g->bitmap_bytes_ = attach::bitmap_bytes(sizes);
    void* p = mmap(nullptr, g->bitmap_bytes_, PROT_READ | PROT_WRITE, MAP_SHARED,
                   g->bitmap_fd_.get(), 0);
    if (p == MAP_FAILED) return errno_status("mmap of the VMM's dirty bitmap");
    g->bitmap_ = static_cast<uint64_t*>(p);
  }
  return g;
}

AttachedGuest::AttachedGuest(Parts parts)
    : hello_(std::move(parts.hello)),
      capabilities_(parts.capabilities),
      regions_(std::move(parts.regions)),
      blocks_(std::move(parts.blocks)),
      bitmap_fd_(std::move(parts.bitmap_fd)),
      uffd_(std::move(parts.uffd)),
      pid_(parts.pid),
      channel_(std::move(parts.channel)) {
  for (auto& b : blocks_) ram_view_.push_back(b.get());
  running_ = hello_.role == attach::Role::kSource;  // a source VMM's guest runs
}

AttachedGuest::~AttachedGuest() {
  detach("ternd let go of the guest (shutting down)");
  if (bitmap_ != nullptr) munmap(bitmap_, bitmap_bytes_);
  lost_->store(true);
}

void AttachedGuest::fail(const Status& s) const {
  std::lock_guard<std::mutex> lock(fail_mu_);
  if (failure_.is_ok()) failure_ = s;
  lost_->store(true);
}

Status AttachedGuest::failure() const {
  std::lock_guard<std::mutex> lock(fail_mu_);
  return failure_;
}

Result<attach::Bytes> AttachedGuest::request(MsgType type, attach::View payload,
                                             std::chrono::milliseconds limit) const {
  if (Status f = failure(); !f) return f;
  const std::string what = attach::type_name(static_cast<uint16_t>(type));
  std::lock_guard<std::mutex> lock(mu_);
  const uint32_t id = next_id_++;
  auto gone = [&](const Status& s) {
    Status st(s.code() == Code::kTimeout ? Code::kTimeout : Code::kUnavailable,
              "the VMM (pid " + std::to_string(pid_) + ") " +
                  (s.code() == Code::kTimeout ? "did not answer " + what + " in time"
                                              : "is gone during " + what + ": " + s.message()));
    fail(st);
    channel_.close();
    return st;
  };
  if (Status s = channel_.send(type, id, payload); !s) return gone(s);
  while (true) {
    Result<attach::Message> m = channel_.receive(limit);
    if (!m) return gone(m.status());
    if (m->type == MsgType::kDetach) {
      std::string why(m->payload.begin(), m->payload.end());
      return gone(Status(Code::kUnavailable, "it detached" + (why.empty() ? "" : ": " + why)));
    }
    if (m->type == MsgType::kRegion) {
      // A hot-plug or resize: the regions are fixed once attached.
      channel_.send_error(m->id, Status(Code::kInvalidArgument,
                                        "regions are fixed once attached; this region change "
                                        "is refused (the migration goes on with the regions "
                                        "attached)"));
      log(LogLevel::kWarn, "the VMM tried to change its RAM regions after attaching: refused");
      continue;
    }
    if (m->id != id || (m->type != MsgType::kReply && m->type != MsgType::kError))
      return gone(Status(Code::kProtocol, "it sent " +
                                              attach::type_name(static_cast<uint16_t>(m->type)) +
                                              " instead of the answer"));
    if (m->type == MsgType::kError) {
      attach::ErrorBody e = attach::decode_error(m->payload);
      return Status(e.code, "the VMM refused " + what + ": " + e.message);
    }
    return std::move(m->payload);
  }
}

Status AttachedGuest::require(uint64_t cap, const char* what) const {
  if (has(cap)) return Status::ok();
  return Status(Code::kUnavailable, std::string("the attached VMM offers no ") + what +
                                        " (capability '" + attach::capability_names(cap) + "')");
}

Status AttachedGuest::start() {
  auto r = request(MsgType::kResume);
  if (!r) return r.status();
  running_ = true;
  return Status::ok();
}

void AttachedGuest::pause() {
  auto r = request(MsgType::kPause);
  if (!r) log(LogLevel::kWarn, r.status().message());
  running_ = false;
}

Status AttachedGuest::start_dirty_log() {
  if (Status s = require(attach::kCapDirtyLog, "dirty logging"); !s) return s;
  auto r = request(MsgType::kDirtyStart);
  return r ? Status::ok() : r.status();
}

void AttachedGuest::stop_dirty_log() {
  if (has(attach::kCapDirtyLog)) (void)request(MsgType::kDirtyStop);
}

uint64_t AttachedGuest::collect_dirty(MigrationBitmap& bitmap) {
  if (bitmap_ == nullptr) return 0;
  auto r = request(MsgType::kDirtySync);
  if (!r) return 0;  // failure() now says why; the engine checks it
  // The VMM wrote the bitmap before replying and does not touch it until the next sync.
  uint64_t n = 0;
  uint64_t word = 0;
  for (uint32_t b = 0; b < regions_.size(); ++b) {
    const uint64_t pages = regions_[b].size / kSmallPage;
    const uint64_t words = attach::bitmap_words(regions_[b].size);
    for (uint64_t w = 0; w < words; ++w, ++word) {
      uint64_t bits = bitmap_[word];
      if (bits == 0) continue;
      bitmap_[word] = 0;
      while (bits != 0) {
        const uint64_t page = w * 64 + static_cast<uint64_t>(__builtin_ctzll(bits));
        bits &= bits - 1;
        if (page >= pages) break;  // bits past the region's end mean nothing
        bitmap.mark_target(b, page);
        ++n;
      }
    }
  }
  return n;
}

Status AttachedGuest::start_free_page_reporting() {
  if (Status s = require(attach::kCapFreePages, "free page reporting"); !s) return s;
  auto r = request(MsgType::kFreeStart);
  return r ? Status::ok() : r.status();
}

uint64_t AttachedGuest::take_free_pages(std::vector<Range>& out) {
  if (!has(attach::kCapFreePages)) return 0;
  auto r = request(MsgType::kFreeTake);
  if (!r) return 0;
  auto ranges = attach::decode_free_ranges(*r);
  if (!ranges) {
    log(LogLevel::kWarn, "free page report from the VMM: " + ranges.status().message());
    return 0;
  }
  uint64_t pages = 0;
  for (const auto& f : *ranges) {  // the engine's filter checks them against ram()
    out.push_back({f.region, f.offset, f.length});
    pages += f.length / kSmallPage;
  }
  return pages;
}

void AttachedGuest::stop_free_page_reporting() {
  if (has(attach::kCapFreePages)) (void)request(MsgType::kFreeStop);
}

std::vector<uint8_t> AttachedGuest::save_state() {
  if (!has(attach::kCapState)) return {};
  auto r = request(MsgType::kSaveState);
  return r ? std::move(*r) : std::vector<uint8_t>{};
}

Status AttachedGuest::load_state(const std::vector<uint8_t>& state) {
  if (!has(attach::kCapState)) return Status::ok();  // a VMM without device state
  auto r = request(MsgType::kLoadState, state);
  return r ? Status::ok() : r.status();
}

std::string AttachedGuest::describe() const {
  uint64_t bytes = 0;
  for (const auto& r : regions_) bytes += r.size;
  return "VMM pid " + std::to_string(pid_) + " (" + hello_.description + "; " +
         std::to_string(regions_.size()) + " region" + (regions_.size() == 1 ? "" : "s") + ", " +
         format_bytes(bytes) + "; capabilities " + attach::capability_names(capabilities_) +
         ")";
}

uint32_t AttachedGuest::dirty_limit_vcpus() const {
  return has(attach::kCapThrottle) ? hello_.vcpus : 0;
}

DirtyRingCounters AttachedGuest::dirty_ring_counters(uint32_t vcpu) const {
  DirtyRingCounters c;
  if (!has(attach::kCapThrottle)) return c;
  auto r = request(MsgType::kRingCounters, attach::encode_u32_pair(vcpu, 0));
  if (!r) return c;
  auto v = attach::decode_counters(*r);
  if (!v) return c;
  c.dirty_pages = v->values[0];
  c.ring_full_exits = v->values[1];
  c.ring_full_ns = v->values[2];
  c.penalty_ns = v->values[3];
  c.ops = v->values[4];
  c.last_exit_ns = v->values[5];
  c.pages_at_last_exit = v->values[6];
  return c;
}

void AttachedGuest::set_ring_full_penalty(uint32_t vcpu, uint64_t microseconds) {
  if (has(attach::kCapThrottle))
    (void)request(MsgType::kSetPenalty, attach::encode(attach::Penalty{vcpu, microseconds}));
}

Status AttachedGuest::set_dirty_limit_tracking(bool on) {
  if (Status s = require(attach::kCapThrottle, "throttling"); !s) return s;
  auto r = request(MsgType::kLimitTracking, attach::encode_u32_pair(on ? 1 : 0, 0));
  return r ? Status::ok() : r.status();
}

Result<std::unique_ptr<Userfault>> AttachedGuest::postcopy_userfault() {
  if (Status s = require(attach::kCapPostcopy, "postcopy (no userfaultfd handed over)"); !s)
    return s;
  int fd = fcntl(uffd_.get(), F_DUPFD_CLOEXEC, 0);
  if (fd < 0) return errno_status("dup of the VMM's userfaultfd");
  std::vector<Userfault::Remap> remaps;
  for (size_t i = 0; i < regions_.size(); ++i)
    remaps.push_back({blocks_[i]->base(), regions_[i].vmm_addr, regions_[i].size});
  return Userfault::adopt(fd, std::move(remaps), has(attach::kCapMinorFaults));
}

VerifyReport AttachedGuest::verify() {
  VerifyReport v;
  auto r = request(MsgType::kVerify, attach::encode_u32_pair(1, 0), std::chrono::minutes(5));
  if (!r) {
    v.mismatches = 1;
    v.first_mismatch = r.status().message();
    return v;
  }
  auto res = attach::decode_verify(*r);
  if (!res) {
    v.mismatches = 1;
    v.first_mismatch = "VERIFY reply: " + res.status().message();
    return v;
  }
  v.pages_checked = res->pages_checked;
  v.mismatches = res->mismatches;
  v.touched_checked = res->touched_checked;
  v.touched_mismatches = res->touched_mismatches;
  v.first_mismatch = res->first_mismatch;
  return v;
}

VerifyReport AttachedGuest::verify_counters() const {
  VerifyReport v;
  if (!has(attach::kCapSelfCheck)) return v;
  auto r = request(MsgType::kVerify, attach::encode_u32_pair(0, 0));
  if (!r) return v;
  auto res = attach::decode_verify(*r);
  if (!res) return v;
  v.touched_checked = res->touched_checked;
  v.touched_mismatches = res->touched_mismatches;
  v.first_mismatch = res->first_mismatch;
  return v;
}

Status AttachedGuest::matches(const Layout& layout) const {
  auto describe_layout = [](const std::vector<std::tuple<std::string, uint64_t, uint32_t>>& v) {
    std::string s;
    for (const auto& [name, size, page] : v)
      s += (s.empty() ? "" : ", ") + name + " " + format_bytes(size) + "/" + format_bytes(page);
    return s;
  };
  std::vector<std::tuple<std::string, uint64_t, uint32_t>> want, have;
  for (const auto& b : layout.blocks) want.emplace_back(b.name, b.size, b.host_page_size);
  for (const auto& r : regions_) have.emplace_back(r.name, r.size, r.host_page_size);
  if (want == have) return Status::ok();
  return Status(Code::kInvalidArgument,
                "the source's RAM (" + describe_layout(want) +
                    ") differs from the attached VMM's regions (" + describe_layout(have) + ")");
}

void AttachedGuest::detach(const std::string& reason) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!channel_.is_open()) return;
  (void)channel_.send(MsgType::kDetach, 0,
                      attach::View(reinterpret_cast<const uint8_t*>(reason.data()), reason.size()),
                      {}, std::chrono::milliseconds(500));
  channel_.close();
}

}  // namespace tern::control
