#include "attach/protocol.h"

#include <bit>
#include <cstring>
#include <iterator>

namespace tern::attach {
namespace {

static_assert(std::endian::native == std::endian::little, "the codec copies little-endian fields");

class Writer {
 public:
  Writer& u16(uint16_t v) { return raw(&v, 2); }
  Writer& u32(uint32_t v) { return raw(&v, 4); }
  Writer& u64(uint64_t v) { return raw(&v, 8); }
  Writer& str(const std::string& s) { return raw(s.data(), s.size()); }
  Bytes take() { return std::move(out_); }

 private:
  Writer& raw(const void* p, size_t n) {
    const auto* b = static_cast<const uint8_t*>(p);
    out_.insert(out_.end(), b, b + n);
    return *this;
  }
  Bytes out_;
};

// Reads fixed fields in order; a read past the end sets short_ and yields 0.
class Reader {
 public:
  explicit Reader(View p) : p_(p) {}
  uint16_t u16() { return get<uint16_t>(); }
  uint32_t u32() { return get<uint32_t>(); }
  uint64_t u64() { return get<uint64_t>(); }
  bool short_read() const { return short_; }
  size_t left() const { return p_.size() - at_; }
  // The rest of the payload as a string: no NULs, at most kMaxName bytes.
  Result<std::string> rest_string(const char* what) {
    View rest = p_.subspan(at_);
    at_ = p_.size();
    if (rest.size() > kMaxName)
      return Status(Code::kProtocol, std::string(what) + " is longer than " +
                                         std::to_string(kMaxName) + " bytes");
    if (std::memchr(rest.data(), 0, rest.size()) != nullptr)
      return Status(Code::kProtocol, std::string(what) + " contains a NUL byte");
    return std::string(rest.begin(), rest.end());
  }

 private:
  template <typename T>
  T get() {
    T v{};
    if (p_.size() - at_ < sizeof(T)) {
      short_ = true;
      at_ = p_.size();
      return v;
    }
    std::memcpy(&v, p_.data() + at_, sizeof(T));
    at_ += sizeof(T);
    return v;
  }
  View p_;
  size_t at_ = 0;
  bool short_ = false;
};

Status too_short(const char* what, size_t need, size_t have) {
  return Status(Code::kProtocol, std::string(what) + " payload of " + std::to_string(have) +
                                     " bytes, needs " + std::to_string(need));
}

Status exact(const char* what, View p, size_t need) {
  if (p.size() != need)
    return Status(Code::kProtocol, std::string(what) + " payload of " + std::to_string(p.size()) +
                                       " bytes, must be " + std::to_string(need));
  return Status::ok();
}

}  // namespace

std::string type_name(uint16_t type) {
  switch (static_cast<MsgType>(type)) {
    case MsgType::kHello: return "HELLO";
    case MsgType::kRegion: return "REGION";
    case MsgType::kReady: return "READY";
    case MsgType::kPause: return "PAUSE";
    case MsgType::kResume: return "RESUME";
    case MsgType::kDirtyStart: return "DIRTY_START";
    case MsgType::kDirtyStop: return "DIRTY_STOP";
    case MsgType::kDirtySync: return "DIRTY_SYNC";
    case MsgType::kSaveState: return "SAVE_STATE";
    case MsgType::kLoadState: return "LOAD_STATE";
    case MsgType::kSetPenalty: return "SET_PENALTY";
    case MsgType::kRingCounters: return "RING_COUNTERS";
    case MsgType::kLimitTracking: return "LIMIT_TRACKING";
    case MsgType::kFreeStart: return "FREE_START";
    case MsgType::kFreeTake: return "FREE_TAKE";
    case MsgType::kFreeStop: return "FREE_STOP";
    case MsgType::kVerify: return "VERIFY";
    case MsgType::kDetach: return "DETACH";
    case MsgType::kReply: return "REPLY";
    case MsgType::kError: return "ERROR";
  }
  return "type " + std::to_string(type);
}

bool known_type(uint16_t type) { return type_name(type).rfind("type ", 0) != 0; }

std::string capability_names(uint64_t caps) {
  static const char* const kNames[] = {"dirty-log",  "state",      "postcopy",    "throttle",
                                       "free-pages", "self-check", "minor-faults"};
  std::string out;
  for (int i = 0; i < 64; ++i) {
    if (!(caps & (uint64_t{1} << i))) continue;
    if (!out.empty()) out += ",";
    out += i < static_cast<int>(std::size(kNames)) ? kNames[i] : "bit" + std::to_string(i);
  }
  return out.empty() ? "none" : out;
}

void encode_header(const Header& h, uint8_t out[kHeaderSize]) {
  Writer w;
  w.u32(kMagic).u16(h.version).u16(static_cast<uint16_t>(h.type)).u32(h.length).u32(h.id);
  Bytes b = w.take();
  std::memcpy(out, b.data(), kHeaderSize);
}

Result<Header> decode_header(View bytes) {
  if (bytes.size() < kHeaderSize) return too_short("header", kHeaderSize, bytes.size());
  Reader r(bytes);
  const uint32_t magic = r.u32();
  Header h;
  h.version = r.u16();
  const uint16_t type = r.u16();
  h.length = r.u32();
  h.id = r.u32();
  if (magic != kMagic)
    return Status(Code::kProtocol, "bad magic " + std::to_string(magic) +
                                       ": not a tern attach message");
  if (h.version != kVersion)
    return Status(Code::kProtocol, "message of protocol version " + std::to_string(h.version) +
                                       "; this side speaks version " + std::to_string(kVersion));
  if (!known_type(type)) return Status(Code::kProtocol, "unknown message " + type_name(type));
  if (h.length > kMaxPayload)
    return Status(Code::kProtocol, type_name(type) + " payload of " + std::to_string(h.length) +
                                       " bytes exceeds the limit of " +
                                       std::to_string(kMaxPayload));
  h.type = static_cast<MsgType>(type);
  return h;
}

Bytes encode(const Hello& m) {
  return Writer()
      .u16(m.min_version)
      .u16(m.max_version)
      .u32(static_cast<uint32_t>(m.role))
      .u64(m.capabilities)
      .u32(m.vcpus)
      .u32(0)
      .str(m.description)
      .take();
}

Result<Hello> decode_hello(View p) {
  constexpr size_t kFixed = 24;
  if (p.size() < kFixed) return too_short("HELLO", kFixed, p.size());
  Reader r(p);
  Hello m;
  m.min_version = r.u16();
  m.max_version = r.u16();
  const uint32_t role = r.u32();
  m.capabilities = r.u64();
  m.vcpus = r.u32();
  (void)r.u32();
  if (role != 1 && role != 2)
    return Status(Code::kProtocol, "HELLO: role " + std::to_string(role) +
                                       " (1 = source, 2 = destination)");
  if (m.min_version > m.max_version)
    return Status(Code::kProtocol, "HELLO: min_version above max_version");
  m.role = static_cast<Role>(role);
  auto d = r.rest_string("HELLO description");
  if (!d) return d.status();
  m.description = std::move(*d);
  return m;
}

Bytes encode(const HelloReply& m) {
  return Writer().u16(m.version).u16(0).u32(0).u64(m.capabilities).take();
}

Result<HelloReply> decode_hello_reply(View p) {
  if (Status s = exact("HELLO reply", p, 16); !s) return s;
  Reader r(p);
  HelloReply m;
  m.version = r.u16();
  (void)r.u16();
  (void)r.u32();
  m.capabilities = r.u64();
  return m;
}

Bytes encode(const Region& m) {
  return Writer()
      .u64(m.guest_phys_addr)
      .u64(m.size)
      .u64(m.fd_offset)
      .u64(m.vmm_addr)
      .u32(m.host_page_size)
      .u32(0)
      .str(m.name)
      .take();
}

Result<Region> decode_region(View p) {
  constexpr size_t kFixed = 40;
  if (p.size() < kFixed) return too_short("REGION", kFixed, p.size());
  Reader r(p);
  Region m;
  m.guest_phys_addr = r.u64();
  m.size = r.u64();
  m.fd_offset = r.u64();
  m.vmm_addr = r.u64();
  m.host_page_size = r.u32();
  (void)r.u32();
  auto n = r.rest_string("REGION name");
  if (!n) return n.status();
  if (n->empty()) return Status(Code::kProtocol, "REGION without a name");
  m.name = std::move(*n);
  return m;
}

Bytes encode(const Ready& m) { return Writer().u32(m.fd_flags).u32(0).take(); }

Result<Ready> decode_ready(View p) {
  if (Status s = exact("READY", p, 8); !s) return s;
  Reader r(p);
  Ready m;
  m.fd_flags = r.u32();
  if (m.fd_flags & ~(kReadyBitmapFd | kReadyUffd))
    return Status(Code::kProtocol, "READY: unknown fd flags " + std::to_string(m.fd_flags));
  return m;
}

Bytes encode(const Penalty& m) { return Writer().u32(m.vcpu).u32(0).u64(m.microseconds).take(); }

Result<Penalty> decode_penalty(View p) {
  if (Status s = exact("SET_PENALTY", p, 16); !s) return s;
  Reader r(p);
  Penalty m;
  m.vcpu = r.u32();
  (void)r.u32();
  m.microseconds = r.u64();
  return m;
}

Bytes encode(const Counters& m) {
  Writer w;
  for (uint64_t v : m.values) w.u64(v);
  return w.take();
}

Result<Counters> decode_counters(View p) {
  if (Status s = exact("RING_COUNTERS reply", p, 64); !s) return s;
  Reader r(p);
  Counters m;
  for (uint64_t& v : m.values) v = r.u64();
  return m;
}

Bytes encode(const std::vector<FreeRange>& m) {
  Writer w;
  w.u32(static_cast<uint32_t>(m.size())).u32(0);
  for (const FreeRange& f : m) w.u32(f.region).u32(0).u64(f.offset).u64(f.length);
  return w.take();
}

Result<std::vector<FreeRange>> decode_free_ranges(View p) {
  if (p.size() < 8) return too_short("FREE_TAKE reply", 8, p.size());
  Reader r(p);
  const uint32_t count = r.u32();
  (void)r.u32();
  if (r.left() / 24 < count || r.left() != uint64_t{count} * 24)
    return Status(Code::kProtocol, "FREE_TAKE reply: " + std::to_string(count) +
                                       " ranges announced, " + std::to_string(r.left()) +
                                       " bytes follow (24 per range)");
  std::vector<FreeRange> out(count);
  for (FreeRange& f : out) {
    f.region = r.u32();
    (void)r.u32();
    f.offset = r.u64();
    f.length = r.u64();
  }
  return out;
}

Bytes encode(const VerifyResult& m) {
  return Writer()
      .u64(m.pages_checked)
      .u64(m.mismatches)
      .u64(m.touched_checked)
      .u64(m.touched_mismatches)
      .str(m.first_mismatch.substr(0, kMaxName))
      .take();
}

Result<VerifyResult> decode_verify(View p) {
  if (p.size() < 32) return too_short("VERIFY reply", 32, p.size());
  Reader r(p);
  VerifyResult m;
  m.pages_checked = r.u64();
  m.mismatches = r.u64();
  m.touched_checked = r.u64();
  m.touched_mismatches = r.u64();
  auto s = r.rest_string("VERIFY first mismatch");
  if (!s) return s.status();
  m.first_mismatch = std::move(*s);
  return m;
}

Bytes encode(const ErrorBody& m) {
  return Writer()
      .u32(static_cast<uint32_t>(m.code))
      .str(m.message.substr(0, 4096))
      .take();
}

ErrorBody decode_error(View p) {
  ErrorBody e;
  if (p.size() < 4) {
    e.message = "ERROR without a code";
    return e;
  }
  Reader r(p);
  const uint32_t code = r.u32();
  e.code = code >= 1 && code <= static_cast<uint32_t>(Code::kInternal) ? static_cast<Code>(code)
                                                                       : Code::kInternal;
  View rest = p.subspan(4, std::min<size_t>(p.size() - 4, 4096));
  for (uint8_t c : rest) e.message += c == 0 ? '?' : static_cast<char>(c);
  if (e.message.empty()) e.message = "(no message)";
  return e;
}

Bytes encode_u32_pair(uint32_t a, uint32_t b) { return Writer().u32(a).u32(b).take(); }
Bytes encode_u64(uint64_t v) { return Writer().u64(v).take(); }

Result<uint64_t> decode_u64(View p) {
  if (Status s = exact("u64", p, 8); !s) return s;
  return Reader(p).u64();
}

Result<std::pair<uint32_t, uint32_t>> decode_u32_pair(View p) {
  if (Status s = exact("u32 pair", p, 8); !s) return s;
  Reader r(p);
  const uint32_t a = r.u32();
  return std::make_pair(a, r.u32());
}

size_t fds_expected(MsgType type, View payload) {
  if (type == MsgType::kRegion) return 1;
  if (type != MsgType::kReady) return 0;
  auto r = decode_ready(payload);
  if (!r) return 0;
  return ((r->fd_flags & kReadyBitmapFd) ? 1 : 0) + ((r->fd_flags & kReadyUffd) ? 1 : 0);
}

uint64_t bitmap_words(uint64_t region_size) { return (region_size / 4096 + 63) / 64; }

uint64_t bitmap_bytes(const std::vector<uint64_t>& region_sizes) {
  uint64_t words = 0;
  for (uint64_t s : region_sizes) words += bitmap_words(s);
  return words * 8;
}

}  // namespace tern::attach
