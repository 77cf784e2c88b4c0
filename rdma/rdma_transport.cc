#include "rdma/rdma_transport.h"

#include <cstdlib>
#include <map>

#include "dataplane/toolkit/hello.h"
#include "rdma/device_choice.h"
#include "rdma/rdma_channel.h"
#include "rdma/verbs_shim.h"

namespace tern {
namespace {

using tern::toolkit::Clock;

struct Address {
  std::string host, port;
  std::string device;  // `device=NAME` option ("" if absent)
};

// "HOST:PORT[,device=NAME]" or "[V6]:PORT[,...]". Errors name the bad part (kInvalidArgument).
Result<Address> parse_address(const std::string& address, bool passive) {
  Address a;
  const auto comma = address.find(',');
  const std::string hostport = address.substr(0, comma);
  for (size_t at = comma; at != std::string::npos;) {
    const auto next = address.find(',', at + 1);
    const std::string opt = address.substr(at + 1, next == std::string::npos ? next : next - at - 1);
    const auto eq = opt.find('=');
    const std::string key = opt.substr(0, eq);
    if (key != "device" || eq == std::string::npos || eq + 1 == opt.size())
      return Status(Code::kInvalidArgument, "rdma option '" + opt + "' in '" + address +
                                                "' is not known (expected device=NAME)");
    a.device = opt.substr(eq + 1);
    at = next;
  }
  const auto colon = hostport.rfind(':');
  if (colon == std::string::npos)
    return Status(Code::kInvalidArgument,
                  "rdma address '" + address + "' has no port (expected HOST:PORT)");
  a.host = hostport.substr(0, colon);
  a.port = hostport.substr(colon + 1);
  if (a.host.size() >= 2 && a.host.front() == '[' && a.host.back() == ']')
    a.host = a.host.substr(1, a.host.size() - 2);
  if (a.host.empty())
    return Status(Code::kInvalidArgument,
                  "rdma address '" + address + "' has no host (expected HOST:PORT)");
  char* end = nullptr;
  const unsigned long p = a.port.empty() ? 70000 : std::strtoul(a.port.c_str(), &end, 10);
  if (a.port.empty() || *end != '\0' || p > 65535)
    return Status(Code::kInvalidArgument, "rdma port '" + a.port + "' in '" + address +
                                              "' is not a number 0-65535");
  if (p == 0 && !passive)
    return Status(Code::kInvalidArgument, "rdma port 0 in '" + address +
                                              "': connect needs the destination's real port");
  return a;
}

bool is_wildcard(const std::string& host) {
  return host == "0.0.0.0" || host == "::" || host == "*";
}

// The device named in the address, else TERN_RDMA_DEVICE, else ("") none.
std::string wanted_device(const Address& a) {
  if (!a.device.empty()) return a.device;
  const char* env = std::getenv("TERN_RDMA_DEVICE");
  return env ? env : "";
}

// The device to use (device_choice.h); hwloc is asked only when there is a choice to make.
Result<rdma::DeviceChoice> pick_device(const std::string& wanted) {
  const std::vector<rdma::DeviceInfo> devices = rdma::list_devices();
  std::map<std::string, rdma::Distance> distance;
  if (wanted.empty() && devices.size() > 1) distance = rdma::hwloc_distances(devices);
  return rdma::choose_device(devices, wanted, [&](const std::string& name) {
    auto it = distance.find(name);
    return it == distance.end() ? rdma::kUnknown : it->second;
  });
}

Status no_ipv4(const rdma::DeviceChoice& c) {
  return Status(Code::kInvalidArgument, "rdma device '" + c.name +
                                            "' has no IPv4 address (no IPv4 GID on its netdev)");
}

}  // namespace

bool rdma_device_present() { return rdma::any_device(nullptr); }

std::string rdma_device_summary() {
  std::string why;
  rdma::any_device(&why);
  return why;
}

TransportRegistration rdma_transport_registration() {
  return {"rdma", [] { return std::unique_ptr<Transport>(new RdmaTransport()); },
          [] {
            std::string why;
            if (rdma::any_device(&why))
              return TransportAvailability{true, "an RDMA device is present (" + why + ")"};
            if (why.rfind("no RDMA device", 0) != 0) why = "no RDMA device (" + why + ")";
            return TransportAvailability{false, why};
          }};
}

RdmaTransport::RdmaTransport()
    : devices_(std::make_unique<rdma::DeviceTable>()),
      memory_(std::make_shared<rdma::MemoryMap>()) {}

RdmaTransport::~RdmaTransport() {
  stop_.store(true);
  if (acceptor_.joinable()) acceptor_.join();
  gatherer_.clear();  // its channels go before the listener they came from
  ready_.clear();
  listener_.reset();
}

Result<std::string> RdmaTransport::listen(const std::string& address) {
  if (listening_) return Status(Code::kInvalidArgument, "rdma: already listening on " + listen_uri_);
  auto a = parse_address(address, /*passive=*/true);
  if (!a) return a.status();
  // A named device: a wildcard HOST listens on that device's address, and a given HOST must
  // belong to it. Unnamed, HOST alone decides (a wildcard listens on every device).
  const std::string wanted = wanted_device(*a);
  std::string host = a->host;
  if (!wanted.empty()) {
    auto choice = pick_device(wanted);
    if (!choice) return choice.status();
    if (is_wildcard(host)) {
      if (choice->ipv4.empty()) return no_ipv4(*choice);
      host = choice->ipv4;
    }
  }
  auto l = rdma::Listener::listen(host, a->port, rdma::RdmaChannel::kShape);
  if (!l) return l.status();
  const std::string owner = (*l)->device_name();
  if (!wanted.empty() && !owner.empty() && owner != wanted)
    return Status(Code::kInvalidArgument, "rdma address " + host + " belongs to device '" +
                                              owner + "', not to the named device '" + wanted + "'");
  listener_ = std::move(*l);
  const bool v6 = host.find(':') != std::string::npos;
  listen_uri_ = "rdma:" + (v6 ? "[" + host + "]" : host) + ":" +
                std::to_string(listener_->port());
  listening_ = true;
  acceptor_ = std::thread([this] { accept_loop(); });
  return listen_uri_;
}

void RdmaTransport::accept_loop() {
  std::vector<std::unique_ptr<rdma::Connection>> got;
  while (!stop_.load()) {
    Status s;
    {
      std::lock_guard<std::mutex> lock(devices_mu_);
      s = listener_->poll(20, *devices_, got);
    }
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& c : got) ready_.push_back(std::move(c));
    got.clear();
    if (!s.is_ok()) {
      acceptor_error_ = s;
      cv_.notify_all();
      return;
    }
    cv_.notify_all();
  }
}

Result<ChannelSet> RdmaTransport::accept(std::chrono::milliseconds timeout) {
  if (!listening_) return Status(Code::kInvalidArgument, "rdma: accept() before listen()");
  const auto deadline = Clock::now() + timeout;
  gatherer_.set_peer_key(peer_key_);
  gatherer_.set_tls(frame_tls());
  gatherer_.set_hello_timeout(handshake_timeout_);
  // Setting up a queue pair takes far longer than a TCP handshake (hundreds of ms under an
  // emulated CPU), so a session often spans several accept() calls: the gatherer keeps the
  // channels and the connections still waiting for their hello across a timeout.
  while (true) {
    std::deque<std::unique_ptr<rdma::Connection>> fresh;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!acceptor_error_.is_ok()) return acceptor_error_;
      fresh.swap(ready_);
    }
    for (auto& c : fresh)
      gatherer_.add_connection(std::make_unique<rdma::RdmaChannel>(std::move(c), memory_),
                               "an rdma peer on " + listen_uri_);
    gatherer_.poll();
    if (auto set = gatherer_.take_complete()) return std::move(*set);
    if (Clock::now() >= deadline)
      return tern::toolkit::timeout_status(
          "rdma accept on " + listen_uri_ + " (have " + gatherer_.progress() + ")", timeout);
    auto until = std::min(deadline, gatherer_.next_deadline());
    if (gatherer_.waiting()) until = std::min(until, Clock::now() + std::chrono::milliseconds(1));
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_until(lock, until, [&] { return !ready_.empty() || !acceptor_error_.is_ok(); });
  }
}

std::string RdmaTransport::tls_default_host(const std::string& address) const {
  auto a = parse_address(address, /*passive=*/false);
  return a ? a->host : "";
}

Result<ChannelSet> RdmaTransport::connect_with_hellos(const std::string& address,
                                                      const std::vector<HelloPayload>& hellos,
                                                      std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  auto a = parse_address(address, /*passive=*/false);
  if (!a) return a.status();
  // The connections leave from the chosen device's address: the named one, or with several
  // devices hwloc's nearest. With one device and none named, librdmacm's routing decides.
  const std::string wanted = wanted_device(*a);
  std::string source_ip;
  if (!wanted.empty() || rdma::list_devices().size() > 1) {
    auto choice = pick_device(wanted);
    if (!choice) return choice.status();
    if (choice->ipv4.empty() && !wanted.empty()) return no_ipv4(*choice);
    source_ip = choice->ipv4;
  }
  ChannelSet out;
  for (const HelloPayload& h : hellos) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0)
      return Status(Code::kTimeout, "rdma: " + std::to_string(out.size()) + " of " +
                                        std::to_string(hellos.size()) + " channels to " + address +
                                        " connected within the handshake timeout (" +
                                        std::to_string(timeout.count()) + " ms)");
    Result<std::unique_ptr<rdma::Connection>> conn = Status(Code::kTimeout, "");
    {
      std::lock_guard<std::mutex> lock(devices_mu_);
      conn = rdma::connect(a->host, a->port, rdma::RdmaChannel::kShape, *devices_,
                           std::max(left, std::chrono::milliseconds(1)), source_ip);
    }
    if (!conn) return conn.status();
    auto ch = std::make_unique<rdma::RdmaChannel>(std::move(*conn), memory_);
    if (!ch->error().is_ok()) return ch->error();
    if (Status s = tern::toolkit::send_hello(*ch, h, deadline); !s.is_ok()) return s;
    out.push_back(std::move(ch));
  }
  return out;
}

void RdmaTransport::release_memory() { memory_->release(); }

std::string RdmaTransport::device_pci() const {
  std::string name;
  {
    std::lock_guard<std::mutex> lock(devices_mu_);
    auto first = devices_->first();  // the device the channels connected through
    if (!first) return "";
    name = (*first)->device_name();
  }
  return rdma::device_pci_address(name);
}

Status RdmaTransport::register_memory(void* addr, size_t len) {
  // Source: memory pages are sent from. Destination: guest RAM the peer may write pages into,
  // announced by the engine only when no postcopy is armed (see the header). Nothing is pinned
  // here: the channels register 64 MiB chunks as they first send from (receive into) them.
  if (len == 0) return Status::ok();
  std::shared_ptr<rdma::ProtectionDomain> pd;
  {
    std::lock_guard<std::mutex> lock(devices_mu_);
    auto first = devices_->first();  // the device the channels connected through
    if (!first) return first.status();
    pd = *first;
  }
  const bool remote = listening_;
  memory_->add(
      addr, len,
      [pd, remote](void* a, size_t n) { return pd->register_region(a, n, remote); }, remote);
  return Status::ok();
}

}  // namespace tern
