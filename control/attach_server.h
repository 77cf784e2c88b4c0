// ternd's attach socket (`ternd --attach-socket PATH`, docs/attach-protocol.md): accepts VMMs,
// checks each attach (version, role, capabilities, every region's fd, READY's fds) and keeps the
// attached VMM as an AttachedGuest until ternd takes it: a source ternd as its guest, a
// destination ternd from its GuestFactory when a source's layout arrives. One VMM waits at a
// time; a source ternd takes its next VMM only once the one it took is gone (died, detached).
//
// Threads: an accept thread of its own does the attaches; take() and factory() from any thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "attach/channel.h"
#include "control/attached_guest.h"

namespace tern::control {

// The checks of one REGION against the regions attached before it; the error names the region
// and what is wrong (not a memfd/shmem/hugetlbfs file, too small, unaligned, overlapping, not
// mappable). On success, the region mapped here.
Result<std::unique_ptr<RamBlock>> check_region(const attach::Region& r, attach::UniqueFd fd,
                                               const std::vector<attach::Region>& earlier);

class AttachServer {
 public:
  // Listens on `path` (0600; a stale socket file is replaced) for VMMs of `role`.
  static Result<std::unique_ptr<AttachServer>> listen(const std::string& path, attach::Role role);
  ~AttachServer();
  AttachServer(const AttachServer&) = delete;
  AttachServer& operator=(const AttachServer&) = delete;

  // Waits up to `limit` for an attached VMM and takes it.
  Result<std::unique_ptr<AttachedGuest>> take(std::chrono::milliseconds limit);
  // take() without waiting, as a Guest (nullptr when no VMM is attached): a source's next
  // guest after its VMM is gone (EngineHost::set_next_guest).
  std::unique_ptr<Guest> take_now();
  // Destination: a GuestFactory that takes the attached VMM when a source's layout arrives and
  // checks the layout against its regions. The server must outlive it.
  GuestFactory factory();
  const std::string& path() const { return path_; }

 private:
  AttachServer(std::string path, attach::Role role, int listen_fd, int stop_fd);
  void run();
  void serve_one(attach::Channel ch, pid_t pid, uid_t uid);
  Result<std::unique_ptr<AttachedGuest>> attach_vmm(attach::Channel& ch, pid_t pid);

  const std::string path_;
  const attach::Role role_;
  attach::UniqueFd listen_fd_;
  attach::UniqueFd stop_fd_;  // eventfd: ends run()
  std::thread thread_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::unique_ptr<AttachedGuest> waiting_;  // attached, not taken yet; guarded by mu_
  // The source's taken VMM is gone (AttachedGuest::lost_flag); null before the first take.
  std::shared_ptr<const std::atomic<bool>> source_lost_;  // guarded by mu_
};

}  // namespace tern::control
