// libtern-vmm (attach/tern-vmm.h): the VMM's end of the attach protocol. Attaches, then serves
// ternd's requests by calling the VMM's callbacks.
#include <sys/mman.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <thread>

#include "attach/channel.h"
#include "attach/protocol.h"
#include "attach/tern-vmm.h"

using namespace tern;
using namespace tern::attach;

struct tern_vmm {
  Channel channel{UniqueFd()};
  tern_vmm_ops ops{};
  void* opaque = nullptr;
  Role role = Role::kSource;
  uint64_t capabilities = 0;
  UniqueFd bitmap_fd;
  uint64_t* bitmap = nullptr;
  uint64_t bitmap_words = 0;
  // What ternd did to the guest, to leave it as it found it if ternd goes away.
  bool logging = false;
  bool paused_by_ternd = false;
  bool state_handed_over = false;  // SAVE_STATE since the last RESUME: the guest may run elsewhere
  std::string callback_error;
  std::string error;

  ~tern_vmm() {
    if (bitmap != nullptr) munmap(bitmap, bitmap_words * 8);
  }
};

namespace {

constexpr auto kRequestLimit = std::chrono::seconds(30);

void set_err(char* err, size_t len, const std::string& msg) {
  if (err == nullptr || len == 0) return;
  std::snprintf(err, len, "%s", msg.c_str());
}

// One request of the attach phase: sends and waits for its REPLY.
Result<Bytes> call(Channel& ch, MsgType type, uint32_t id, View payload,
                   const std::vector<int>& fds = {}) {
  if (Status s = ch.send(type, id, payload, fds); !s) return s;
  Result<Message> m = ch.receive(kRequestLimit);
  if (!m) return m.status();
  if (m->id != id) return Status(Code::kProtocol, "ternd answered another request");
  if (m->type == MsgType::kError) {
    ErrorBody e = decode_error(m->payload);
    return Status(e.code, "ternd refused " + type_name(static_cast<uint16_t>(type)) + ": " +
                              e.message);
  }
  if (m->type != MsgType::kReply)
    return Status(Code::kProtocol, "ternd sent " + type_name(static_cast<uint16_t>(m->type)) +
                                       " instead of a reply");
  return std::move(m->payload);
}

Status attach_to(tern_vmm& v, const char* path, const tern_vmm_config& c) {
  const int timeout = c.connect_timeout_ms > 0 ? c.connect_timeout_ms : 10000;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout);
  Hello h;
  h.role = static_cast<Role>(c.role);
  h.capabilities = c.capabilities;
  h.vcpus = c.vcpus;
  h.description = c.description ? std::string(c.description).substr(0, kMaxName) : "";
  uint32_t id = 1;
  Result<Bytes> hello = Status(Code::kTimeout, "no ternd answered on the attach socket");
  while (true) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    auto ch = Channel::connect(path, std::max(left, std::chrono::milliseconds(0)));
    if (!ch) return ch.status();
    v.channel = std::move(*ch);
    hello = call(v.channel, MsgType::kHello, id++, encode(h));
    // A ternd that dies closes its connections before its listening socket: a connect in
    // between lands in a backlog that is about to vanish. Retry until one answers.
    if (hello || hello.status().code() != Code::kIo || std::chrono::steady_clock::now() >= deadline)
      break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (!hello) return hello.status();
  auto reply = decode_hello_reply(*hello);
  if (!reply) return reply.status();
  v.capabilities = reply->capabilities;
  std::vector<uint64_t> sizes;
  for (size_t i = 0; i < c.n_regions; ++i) {
    const tern_vmm_region& r = c.regions[i];
    Region m;
    m.guest_phys_addr = r.guest_phys_addr;
    m.size = r.size;
    m.fd_offset = r.fd_offset;
    m.vmm_addr = reinterpret_cast<uintptr_t>(r.host_addr);
    m.host_page_size = r.host_page_size;
    m.name = r.name ? r.name : "";
    if (auto ok = call(v.channel, MsgType::kRegion, id++, encode(m), {r.fd}); !ok)
      return ok.status();
    sizes.push_back(r.size);
  }
  Ready ready;
  std::vector<int> fds;
  if (v.role == Role::kSource && (v.capabilities & kCapDirtyLog)) {
    v.bitmap_words = bitmap_bytes(sizes) / 8;
    v.bitmap_fd = UniqueFd(memfd_create("tern-dirty-bitmap", MFD_CLOEXEC));
    if (v.bitmap_fd.get() < 0) return errno_status("memfd_create for the dirty bitmap");
    const size_t bytes = std::max<uint64_t>(v.bitmap_words * 8, 8);
    if (ftruncate(v.bitmap_fd.get(), static_cast<off_t>(bytes)) != 0)
      return errno_status("ftruncate of the dirty bitmap");
    void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, v.bitmap_fd.get(), 0);
    if (p == MAP_FAILED) return errno_status("mmap of the dirty bitmap");
    v.bitmap = static_cast<uint64_t*>(p);
    v.bitmap_words = bytes / 8;
    ready.fd_flags |= kReadyBitmapFd;
    fds.push_back(v.bitmap_fd.get());
  }
  if (v.role == Role::kDestination && (v.capabilities & kCapPostcopy)) {
    if (c.userfaultfd < 0)
      return Status(Code::kInvalidArgument, "capability postcopy offered without a userfaultfd");
    ready.fd_flags |= kReadyUffd;
    fds.push_back(c.userfaultfd);
  }
  if (auto ok = call(v.channel, MsgType::kReady, id++, encode(ready), fds); !ok)
    return ok.status();
  return Status::ok();
}

// Runs one callback; a missing one or a failure becomes an error for ternd.
Status run(tern_vmm& v, const char* what, int rc) {
  if (rc == 0) return Status::ok();
  std::string msg = v.callback_error.empty() ? std::string("the VMM's ") + what + " failed"
                                             : v.callback_error;
  v.callback_error.clear();
  return Status(Code::kUnavailable, msg);
}

Status missing(const char* what) {
  return Status(Code::kUnavailable, std::string("the VMM has no ") + what + " callback");
}

// Serves one request; the reply payload or the error for ternd.
Result<Bytes> serve_one(tern_vmm& v, const Message& m) {
  const tern_vmm_ops& o = v.ops;
  switch (m.type) {
    case MsgType::kPause:
      if (!o.pause) return missing("pause");
      if (Status s = run(v, "pause", o.pause(v.opaque)); !s) return s;
      v.paused_by_ternd = true;
      return Bytes{};
    case MsgType::kResume:
      if (!o.resume) return missing("resume");
      if (Status s = run(v, "resume", o.resume(v.opaque)); !s) return s;
      v.paused_by_ternd = v.state_handed_over = false;
      return Bytes{};
    case MsgType::kDirtyStart:
      if (!o.dirty_log_start) return missing("dirty_log_start");
      if (Status s = run(v, "dirty_log_start", o.dirty_log_start(v.opaque)); !s) return s;
      v.logging = true;
      return Bytes{};
    case MsgType::kDirtyStop:
      if (!o.dirty_log_stop) return missing("dirty_log_stop");
      if (Status s = run(v, "dirty_log_stop", o.dirty_log_stop(v.opaque)); !s) return s;
      v.logging = false;
      return Bytes{};
    case MsgType::kDirtySync: {
      if (!o.dirty_log_sync || v.bitmap == nullptr) return missing("dirty_log_sync");
      const int64_t n = o.dirty_log_sync(v.opaque, v.bitmap, v.bitmap_words);
      if (n < 0) return run(v, "dirty_log_sync", -1);
      return encode_u64(static_cast<uint64_t>(n));
    }
    case MsgType::kSaveState: {
      if (!o.save_state) return missing("save_state");
      void* data = nullptr;
      size_t len = 0;
      if (Status s = run(v, "save_state", o.save_state(v.opaque, &data, &len)); !s) return s;
      Bytes out(static_cast<uint8_t*>(data), static_cast<uint8_t*>(data) + len);
      std::free(data);
      if (out.size() > kMaxPayload)
        return Status(Code::kInvalidArgument, "the VMM's state is larger than the protocol's 64 MiB");
      v.state_handed_over = true;
      return out;
    }
    case MsgType::kLoadState:
      if (!o.load_state) return missing("load_state");
      if (Status s = run(v, "load_state", o.load_state(v.opaque, m.payload.data(),
                                                       m.payload.size()));
          !s)
        return s;
      return Bytes{};
    case MsgType::kSetPenalty: {
      auto p = decode_penalty(m.payload);
      if (!p) return p.status();
      if (!o.set_penalty) return missing("set_penalty");
      if (Status s = run(v, "set_penalty", o.set_penalty(v.opaque, p->vcpu, p->microseconds)); !s)
        return s;
      return Bytes{};
    }
    case MsgType::kRingCounters: {
      auto p = decode_u32_pair(m.payload);
      if (!p) return p.status();
      if (!o.ring_counters) return missing("ring_counters");
      Counters c;
      if (Status s = run(v, "ring_counters", o.ring_counters(v.opaque, p->first, c.values)); !s)
        return s;
      return encode(c);
    }
    case MsgType::kLimitTracking: {
      auto p = decode_u32_pair(m.payload);
      if (!p) return p.status();
      if (!o.limit_tracking) return missing("limit_tracking");
      if (Status s = run(v, "limit_tracking", o.limit_tracking(v.opaque, p->first != 0)); !s)
        return s;
      return Bytes{};
    }
    case MsgType::kFreeStart:
      if (!o.free_pages_start) return missing("free_pages_start");
      if (Status s = run(v, "free_pages_start", o.free_pages_start(v.opaque)); !s) return s;
      return Bytes{};
    case MsgType::kFreeStop:
      if (!o.free_pages_stop) return missing("free_pages_stop");
      if (Status s = run(v, "free_pages_stop", o.free_pages_stop(v.opaque)); !s) return s;
      return Bytes{};
    case MsgType::kFreeTake: {
      if (!o.free_pages_take) return missing("free_pages_take");
      tern_vmm_free_range* r = nullptr;
      const int64_t n = o.free_pages_take(v.opaque, &r);
      if (n < 0) return run(v, "free_pages_take", -1);
      std::vector<FreeRange> out;
      for (int64_t i = 0; i < n; ++i) out.push_back({r[i].region, r[i].offset, r[i].length});
      std::free(r);
      return encode(out);
    }
    case MsgType::kVerify: {
      auto p = decode_u32_pair(m.payload);
      if (!p) return p.status();
      if (!o.verify) return missing("verify");
      tern_vmm_verify out{};
      if (Status s = run(v, "verify", o.verify(v.opaque, p->first != 0, &out)); !s) return s;
      out.first_mismatch[sizeof(out.first_mismatch) - 1] = 0;
      return encode(VerifyResult{out.pages_checked, out.mismatches, out.touched_checked,
                                 out.touched_mismatches, out.first_mismatch});
    }
    default:
      return Status(Code::kProtocol, "the VMM does not serve " +
                                         type_name(static_cast<uint16_t>(m.type)));
  }
}

// ternd is gone: leave the guest as ternd found it where that is safe.
void end(tern_vmm& v, const std::string& why) {
  if (!v.error.empty()) return;
  v.error = why;
  if (v.logging && v.ops.dirty_log_stop) (void)v.ops.dirty_log_stop(v.opaque);
  v.logging = false;
  if (v.role == Role::kSource && v.paused_by_ternd) {
    if (v.state_handed_over) {
      v.error += "; the guest's state had been handed over (it may run on the destination): "
                 "it stays paused";
    } else if (v.ops.resume && v.ops.resume(v.opaque) == 0) {
      v.error += "; the guest was resumed";
      v.paused_by_ternd = false;
    }
  }
  v.channel.close();
}

}  // namespace

extern "C" {

struct tern_vmm* tern_vmm_attach(const char* socket_path, const struct tern_vmm_config* config,
                                 const struct tern_vmm_ops* ops, void* opaque, char* err,
                                 size_t err_len) {
  if (socket_path == nullptr || config == nullptr || ops == nullptr) {
    set_err(err, err_len, "tern_vmm_attach: socket_path, config and ops are required");
    return nullptr;
  }
  auto* v = new (std::nothrow) tern_vmm;
  if (v == nullptr) {
    set_err(err, err_len, "out of memory");
    return nullptr;
  }
  v->ops = *ops;
  v->opaque = opaque;
  v->role = static_cast<Role>(config->role);
  if (Status s = attach_to(*v, socket_path, *config); !s) {
    set_err(err, err_len, s.message());
    delete v;
    return nullptr;
  }
  return v;
}

int tern_vmm_fd(const struct tern_vmm* vmm) { return vmm->channel.fd(); }

int tern_vmm_dispatch(struct tern_vmm* vmm, int timeout_ms) {
  tern_vmm& v = *vmm;
  if (!v.error.empty()) return -1;
  auto limit = std::chrono::milliseconds(timeout_ms < 0 ? (1 << 30) : timeout_ms);
  Result<Message> m = v.channel.receive(limit);
  if (!m) {
    if (m.status().code() == Code::kTimeout) return 0;
    end(v, "ternd: " + m.status().message());
    return -1;
  }
  if (m->type == MsgType::kDetach) {
    std::string why(m->payload.begin(), m->payload.end());
    end(v, "ternd detached" + (why.empty() ? std::string() : ": " + why));
    return -1;
  }
  Result<Bytes> reply = serve_one(v, *m);
  Status sent = reply ? v.channel.send(MsgType::kReply, m->id, *reply)
                      : v.channel.send(MsgType::kError, m->id,
                                       encode(ErrorBody{reply.status().code(),
                                                        reply.status().message()}));
  if (!sent) {
    end(v, "ternd: " + sent.message());
    return -1;
  }
  return 1;
}

int tern_vmm_serve(struct tern_vmm* vmm) {
  while (tern_vmm_dispatch(vmm, -1) >= 0) {
  }
  return vmm->error.rfind("ternd detached", 0) == 0 ? 0 : -1;
}

void tern_vmm_fail(struct tern_vmm* vmm, const char* message) {
  vmm->callback_error = message ? message : "";
}

const char* tern_vmm_error(const struct tern_vmm* vmm) { return vmm->error.c_str(); }

uint64_t tern_vmm_capabilities(const struct tern_vmm* vmm) { return vmm->capabilities; }

void tern_vmm_detach(struct tern_vmm* vmm, const char* reason) {
  if (vmm == nullptr) return;
  if (vmm->channel.is_open()) {
    std::string r = reason ? reason : "";
    (void)vmm->channel.send(MsgType::kDetach, 0, View(reinterpret_cast<const uint8_t*>(r.data()),
                                                      r.size()),
                            {}, std::chrono::milliseconds(500));
  }
  delete vmm;
}

}  // extern "C"
