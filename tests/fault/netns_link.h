// Two network namespaces of a test's own joined by a veth pair (the source's end and the
// destination's end), with IPv4 addresses, a link that can be cut (both ends down) and
// restored, and everything deleted on destruction. Needs root and iproute2's `ip`.
#pragma once

#include <string>
#include <vector>

namespace tern::fault {

class NetnsLink {
 public:
  // Creates the pair, named after `tag` (short: interface names are at most 15 bytes) and
  // the MTU. Check ok() / error() before use.
  NetnsLink(const std::string& tag, int mtu);
  ~NetnsLink();
  NetnsLink(const NetnsLink&) = delete;
  NetnsLink& operator=(const NetnsLink&) = delete;

  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }

  // argv prefix that runs a program inside the source's / destination's namespace.
  std::vector<std::string> source_launcher() const;
  std::vector<std::string> destination_launcher() const;
  const std::string& source_interface() const { return src_if_; }
  const std::string& destination_interface() const { return dst_if_; }
  static constexpr const char* kSourceAddress = "10.99.0.1";
  static constexpr const char* kDestinationAddress = "10.99.0.2";

  // Takes both ends down (packets in flight are lost; connect() gets ENETUNREACH) / up again.
  // False, with error() set, when `ip` fails.
  bool cut();
  bool restore();

 private:
  bool run(const std::string& command);
  std::string src_ns_, dst_ns_, src_if_, dst_if_;
  std::string error_;
  bool created_ = false;
};

}  // namespace tern::fault
