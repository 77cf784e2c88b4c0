// A guest that lives in a VMM process attached to ternd (docs/attach-protocol.md), as the
// engine's Guest: its RAM is the VMM's regions mapped here a second time (RamBlock::map_fd);
// run control, dirty logging, state, throttling, free-page reports and the page self check are
// requests to the VMM over the attach socket. Built by AttachServer (control/attach_server.h)
// once the VMM's attach was checked.
//
// If the VMM dies or misbehaves, the request fails, failure() says why from then on, and every
// later request fails at once: the engine fails the migration, ternd stays up.
//
// Threads: Guest methods from the migration control thread; the dirty-limit methods,
// failure(), verify() and verify_counters() from any thread. Requests are serialized (mu_).
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "attach/channel.h"
#include "attach/protocol.h"
#include "dataplane/guest.h"
#include "vm/self_check.h"

namespace tern::control {

class AttachedGuest : public Guest, public SelfCheck {
 public:
  // What a checked attach produced. blocks[i] maps regions[i]; bitmap (source with dirty-log)
  // maps the VMM's bitmap memfd; uffd (destination with postcopy) is the VMM's userfaultfd.
  struct Parts {
    attach::Channel channel{attach::UniqueFd()};
    attach::Hello hello;
    uint64_t capabilities = 0;  // negotiated
    std::vector<attach::Region> regions;
    std::vector<std::unique_ptr<RamBlock>> blocks;
    attach::UniqueFd bitmap_fd;
    attach::UniqueFd uffd;
    pid_t pid = 0;
  };
  static Result<std::unique_ptr<AttachedGuest>> create(Parts parts);
  ~AttachedGuest() override;

  // Guest.
  const std::vector<RamBlock*>& ram() const override { return ram_view_; }
  Status start() override;
  void pause() override;
  bool running() const override { return running_.load(); }
  Status start_dirty_log() override;
  void stop_dirty_log() override;
  uint64_t collect_dirty(MigrationBitmap& bitmap) override;
  bool reports_free_pages() const override { return has(attach::kCapFreePages); }
  Status start_free_page_reporting() override;
  uint64_t take_free_pages(std::vector<Range>& out) override;
  void stop_free_page_reporting() override;
  std::vector<uint8_t> save_state() override;
  Status load_state(const std::vector<uint8_t>& state) override;
  std::string describe() const override;
  uint32_t dirty_limit_vcpus() const override;
  DirtyRingCounters dirty_ring_counters(uint32_t vcpu) const override;
  void set_ring_full_penalty(uint32_t vcpu, uint64_t microseconds) override;
  Status set_dirty_limit_tracking(bool on) override;
  Status failure() const override;
  Result<std::unique_ptr<Userfault>> postcopy_userfault() override;

  // SelfCheck: the VMM's own check (capability self-check).
  VerifyReport verify() override;
  VerifyReport verify_counters() const override;

  // Destination: whether `layout` (from the source) is what the VMM attached; the error spells
  // out the difference.
  Status matches(const Layout& layout) const;
  attach::Role role() const { return hello_.role; }
  // Tells the VMM ternd detaches (ternd shutting down), best effort.
  void detach(const std::string& reason);
  // Set once the VMM is gone (failure() not ok) or this guest destroyed; outlives the guest.
  // The attach server reads it to admit a source's next VMM. Any thread.
  std::shared_ptr<const std::atomic<bool>> lost_flag() const { return lost_; }

 private:
  explicit AttachedGuest(Parts parts);
  bool has(uint64_t cap) const { return (capabilities_ & cap) != 0; }
  // One request; its REPLY payload, or why not (then, unless the VMM only refused it, the
  // attachment is over: failure()).
  Result<attach::Bytes> request(attach::MsgType type, attach::View payload = {},
                                std::chrono::milliseconds limit = std::chrono::seconds(30)) const;
  Status require(uint64_t cap, const char* what) const;
  void fail(const Status& s) const;

  // (fixed) after create().
  attach::Hello hello_;
  uint64_t capabilities_;
  std::vector<attach::Region> regions_;
  std::vector<std::unique_ptr<RamBlock>> blocks_;
  std::vector<RamBlock*> ram_view_;
  attach::UniqueFd bitmap_fd_;
  uint64_t* bitmap_ = nullptr;  // the VMM's dirty bitmap, mapped shared
  uint64_t bitmap_bytes_ = 0;
  attach::UniqueFd uffd_;
  pid_t pid_;

  mutable std::mutex mu_;  // serializes requests; guards channel_ and next_id_
  mutable attach::Channel channel_;
  mutable uint32_t next_id_ = 1;
  std::atomic<bool> running_{false};
  mutable std::mutex fail_mu_;
  mutable Status failure_;  // guarded by fail_mu_; set once
  std::shared_ptr<std::atomic<bool>> lost_ = std::make_shared<std::atomic<bool>>(false);
};

}  // namespace tern::control
