#include "control/attach_server.h"

#include <linux/magic.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

#include "control/format.h"
#include "control/log.h"

namespace tern::control {

using attach::MsgType;
using attach::Region;
using attach::UniqueFd;

namespace {

constexpr auto kStepLimit = std::chrono::seconds(30);  // each message of an attach

std::string region_name(const Region& r) { return "region '" + r.name + "'"; }

}  // namespace

Result<std::unique_ptr<RamBlock>> check_region(const Region& r, UniqueFd fd,
                                               const std::vector<Region>& earlier) {
  const std::string what = region_name(r);
  if (earlier.size() >= attach::kMaxRegions)
    return Status(Code::kInvalidArgument, what + ": more than " +
                                              std::to_string(attach::kMaxRegions) + " regions");
  if (r.host_page_size != kSmallPage && r.host_page_size != kHugePage)
    return Status(Code::kInvalidArgument, what + ": host page size " +
                                              std::to_string(r.host_page_size) +
                                              " (must be 4096 or 2097152)");
  if (r.size == 0 || r.size % r.host_page_size || r.fd_offset % r.host_page_size ||
      r.vmm_addr % r.host_page_size || r.guest_phys_addr % r.host_page_size)
    return Status(Code::kInvalidArgument,
                  what + ": size, file offset, VMM address and guest-physical address must be "
                         "non-zero multiples of the host page size " +
                      format_bytes(r.host_page_size));
  if (r.guest_phys_addr + r.size < r.guest_phys_addr || r.fd_offset + r.size < r.fd_offset)
    return Status(Code::kInvalidArgument, what + ": range wraps around");
  for (const Region& e : earlier) {
    if (e.name == r.name)
      return Status(Code::kInvalidArgument, what + ": a region of that name is attached already");
    if (r.guest_phys_addr < e.guest_phys_addr + e.size &&
        e.guest_phys_addr < r.guest_phys_addr + r.size)
      return Status(Code::kInvalidArgument,
                    what + ": guest-physical range overlaps " + region_name(e));
  }
  struct stat st {};
  if (fstat(fd.get(), &st) != 0) return errno_status(what + ": fstat of its fd");
  struct statfs fs {};
  if (fstatfs(fd.get(), &fs) != 0) return errno_status(what + ": fstatfs of its fd");
  const bool shmem = fs.f_type == TMPFS_MAGIC;
  const bool hugetlb = fs.f_type == HUGETLBFS_MAGIC;
  if (!S_ISREG(st.st_mode) || (!shmem && !hugetlb))
    return Status(Code::kInvalidArgument,
                  what + ": its fd is not a memfd, shmem or hugetlbfs file (guest RAM must be "
                         "shareable memory: memfd_create, /dev/shm, hugetlbfs)");
  if (hugetlb != (r.host_page_size == kHugePage))
    return Status(Code::kInvalidArgument,
                  what + ": host page size " + format_bytes(r.host_page_size) +
                      (hugetlb ? " but the fd is hugetlbfs (2 MiB)" : " but the fd is not hugetlbfs"));
  if (static_cast<uint64_t>(st.st_size) < r.fd_offset + r.size)
    return Status(Code::kInvalidArgument,
                  what + ": the file holds " + format_bytes(static_cast<uint64_t>(st.st_size)) +
                      ", the region needs " + format_bytes(r.fd_offset + r.size));
  return RamBlock::map_fd(r.name, fd.release(), r.fd_offset, r.size, r.host_page_size);
}

Result<std::unique_ptr<AttachServer>> AttachServer::listen(const std::string& path,
                                                           attach::Role role) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path))
    return Status(Code::kInvalidArgument, "attach socket path too long: " + path);
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) return errno_status("socket(AF_UNIX)");
  ::unlink(path.c_str());
  const mode_t old = ::umask(0177);
  const int rc = ::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  ::umask(old);
  if (rc != 0) return errno_status("bind of the attach socket " + path);
  if (::listen(fd.get(), 4) != 0) return errno_status("listen on the attach socket " + path);
  UniqueFd stop(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (stop.get() < 0) return errno_status("eventfd");
  std::unique_ptr<AttachServer> s(new AttachServer(path, role, fd.release(), stop.release()));
  s->thread_ = std::thread([p = s.get()] { p->run(); });
  return s;
}

AttachServer::AttachServer(std::string path, attach::Role role, int listen_fd, int stop_fd)
    : path_(std::move(path)), role_(role), listen_fd_(listen_fd), stop_fd_(stop_fd) {}

AttachServer::~AttachServer() {
  uint64_t one = 1;
  (void)!::write(stop_fd_.get(), &one, sizeof one);
  if (thread_.joinable()) thread_.join();
  ::unlink(path_.c_str());
}

void AttachServer::run() {
  while (true) {
    pollfd p[2] = {{listen_fd_.get(), POLLIN, 0}, {stop_fd_.get(), POLLIN, 0}};
    if (::poll(p, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (p[1].revents) return;
    if (!(p[0].revents & POLLIN)) continue;
    UniqueFd c(::accept4(listen_fd_.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (c.get() < 0) continue;
    ucred cred{};
    socklen_t len = sizeof cred;
    if (getsockopt(c.get(), SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) continue;
    serve_one(attach::Channel(std::move(c)), cred.pid, cred.uid);
  }
}

void AttachServer::serve_one(attach::Channel ch, pid_t pid, uid_t uid) {
  auto refuse = [&](const Status& s) {
    log(LogLevel::kWarn, "VMM pid " + std::to_string(pid) + " not attached: " + s.message());
    ch.send_error(0, s);
  };
  if (uid != 0 && uid != ::geteuid())
    return refuse(Status(Code::kInvalidArgument, "uid " + std::to_string(uid) +
                                                     " may not attach (root or ternd's owner)"));
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (waiting_ || (source_lost_ && !source_lost_->load()))
      return refuse(Status(Code::kUnavailable,
                           "a VMM is attached to this ternd already; start another ternd"));
  }
  Result<std::unique_ptr<AttachedGuest>> g = attach_vmm(ch, pid);
  if (!g) return refuse(g.status());
  log(LogLevel::kInfo, "attached: " + (*g)->describe());
  std::lock_guard<std::mutex> lock(mu_);
  waiting_ = std::move(*g);
  cv_.notify_all();
}

Result<std::unique_ptr<AttachedGuest>> AttachServer::attach_vmm(attach::Channel& ch, pid_t pid) {
  AttachedGuest::Parts parts;
  parts.pid = pid;
  auto reply_error = [&](uint32_t id, const Status& s) -> Status {
    ch.send_error(id, s);
    return s;
  };
  // HELLO.
  Result<attach::Message> m = ch.receive(kStepLimit);
  if (!m) return m.status();
  if (m->type != MsgType::kHello)
    return reply_error(m->id, Status(Code::kProtocol, "an attach begins with HELLO"));
  auto hello = attach::decode_hello(m->payload);
  if (!hello) return reply_error(m->id, hello.status());
  if (hello->min_version > attach::kVersion || hello->max_version < attach::kVersion)
    return reply_error(m->id, Status(Code::kUnavailable,
                                     "the VMM speaks versions " +
                                         std::to_string(hello->min_version) + ".." +
                                         std::to_string(hello->max_version) +
                                         "; this ternd speaks version 1"));
  if (hello->role != role_)
    return reply_error(
        m->id, Status(Code::kInvalidArgument,
                      std::string("this ternd is a ") +
                          (role_ == attach::Role::kSource ? "source" : "destination") +
                          " and takes " +
                          (role_ == attach::Role::kSource ? "a running guest's VMM"
                                                          : "a destination VMM")));
  parts.capabilities = hello->capabilities & attach::kAllCapabilities;
  if (role_ == attach::Role::kSource)
    parts.capabilities &= ~uint64_t{attach::kCapPostcopy | attach::kCapMinorFaults};
  if (!(parts.capabilities & attach::kCapPostcopy))  // minor faults of which userfaultfd?
    parts.capabilities &= ~uint64_t{attach::kCapMinorFaults};
  if (role_ == attach::Role::kDestination) parts.capabilities &= ~uint64_t{attach::kCapDirtyLog};
  parts.hello = *hello;
  if (Status s = ch.send(MsgType::kReply, m->id,
                         attach::encode(attach::HelloReply{attach::kVersion, parts.capabilities}));
      !s)
    return s;
  // REGIONs, then READY.
  while (true) {
    m = ch.receive(kStepLimit);
    if (!m) return m.status();
    if (m->type == MsgType::kRegion) {
      auto r = attach::decode_region(m->payload);
      if (!r) return reply_error(m->id, r.status());
      auto block = check_region(*r, std::move(m->fds[0]), parts.regions);
      if (!block) {  // refused; the VMM may send a corrected one
        ch.send_error(m->id, block.status());
        continue;
      }
      parts.regions.push_back(*r);
      parts.blocks.push_back(std::move(*block));
      if (Status s = ch.send(MsgType::kReply, m->id, {}); !s) return s;
      continue;
    }
    if (m->type != MsgType::kReady)
      return reply_error(m->id, Status(Code::kProtocol,
                                       attach::type_name(static_cast<uint16_t>(m->type)) +
                                           " during attach (expected REGION or READY)"));
    auto ready = attach::decode_ready(m->payload);
    if (!ready) return reply_error(m->id, ready.status());
    if (parts.regions.empty())
      return reply_error(m->id, Status(Code::kInvalidArgument, "READY without a region"));
    size_t next_fd = 0;
    const bool want_bitmap = parts.capabilities & attach::kCapDirtyLog;
    const bool want_uffd = parts.capabilities & attach::kCapPostcopy;
    if ((ready->fd_flags & attach::kReadyBitmapFd) != 0) parts.bitmap_fd = std::move(m->fds[next_fd++]);
    if ((ready->fd_flags & attach::kReadyUffd) != 0) parts.uffd = std::move(m->fds[next_fd++]);
    if (want_bitmap) {
      std::vector<uint64_t> sizes;
      for (const auto& r : parts.regions) sizes.push_back(r.size);
      struct stat st {};
      if (parts.bitmap_fd.get() < 0 || fstat(parts.bitmap_fd.get(), &st) != 0 ||
          static_cast<uint64_t>(st.st_size) < attach::bitmap_bytes(sizes))
        return reply_error(m->id, Status(Code::kInvalidArgument,
                                         "capability dirty-log needs a bitmap memfd of at least " +
                                             std::to_string(attach::bitmap_bytes(sizes)) +
                                             " bytes in READY"));
    }
    if (want_uffd && parts.uffd.get() < 0)
      return reply_error(m->id, Status(Code::kInvalidArgument,
                                       "capability postcopy needs the VMM's userfaultfd in READY"));
    if (Status s = ch.send(MsgType::kReply, m->id, {}); !s) return s;
    parts.channel = std::move(ch);
    return AttachedGuest::create(std::move(parts));  // on failure the VMM sees the socket close
  }
}

Result<std::unique_ptr<AttachedGuest>> AttachServer::take(std::chrono::milliseconds limit) {
  std::unique_lock<std::mutex> lock(mu_);
  if (!cv_.wait_for(lock, limit, [&] { return waiting_ != nullptr; }))
    return Status(Code::kTimeout, "no VMM attached on " + path_ + " within " +
                                      std::to_string(limit.count() / 1000) + " s");
  if (role_ == attach::Role::kSource) source_lost_ = waiting_->lost_flag();
  return std::move(waiting_);
}

std::unique_ptr<Guest> AttachServer::take_now() {
  auto g = take(std::chrono::milliseconds(0));
  return g ? std::unique_ptr<Guest>(std::move(*g)) : nullptr;
}

GuestFactory AttachServer::factory() {
  return [this](const Layout& layout) -> Result<std::unique_ptr<Guest>> {
    auto g = take(std::chrono::seconds(10));
    if (!g)
      return Status(Code::kUnavailable,
                    g.status().message() +
                        ": start the destination VMM (attached to this ternd) before migrating");
    if (Status s = (*g)->matches(layout); !s) {
      (*g)->detach(s.message());
      return s;
    }
    return std::unique_ptr<Guest>(std::move(*g));
  };
}

}  // namespace tern::control
