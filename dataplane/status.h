// Control-path error handling: a [[nodiscard]] status that carries a code and a message a
// person can act on. The data path never uses it (it counts and reports per-completion status).
#pragma once

#include <cerrno>
#include <cstring>
#include <optional>
#include <string>
#include <utility>

namespace tern {

enum class Code {
  kOk = 0,
  kInvalidArgument,  // the caller asked for something malformed (bad URI, size, option)
  kNotFound,         // a named thing (transport, device, block) does not exist
  kUnavailable,      // the thing exists but cannot be used here (no /dev/kvm, no hugepages)
  kProtocol,         // the peer sent something that breaks the wire contract
  kIo,               // a system call or connection failed
  kCancelled,        // the user cancelled
  kTimeout,
  kInternal,
  kDenied,           // a peer did not prove it belongs to this migration (authentication)
};

const char* code_name(Code c);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Code code, std::string message) : code_(code), message_(std::move(message)) {}
  static Status ok() { return {}; }

  bool is_ok() const { return code_ == Code::kOk; }
  explicit operator bool() const { return is_ok(); }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }
  // "protocol: frame for block 7 but the layout has 1 block"
  std::string to_string() const;

 private:
  Code code_ = Code::kOk;
  std::string message_;
};

// Status for a failed system call: "<what>: <strerror(errno)>".
Status errno_status(const std::string& what, int err = errno);

// A value or the reason there is none.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : status_(std::move(status)) {}  // NOLINT: must not be ok
  bool is_ok() const { return value_.has_value(); }
  explicit operator bool() const { return is_ok(); }
  const Status& status() const { return status_; }
  T& value() & { return *value_; }
  T&& value() && { return std::move(*value_); }
  T& operator*() { return *value_; }
  T* operator->() { return &*value_; }

 private:
  std::optional<T> value_;
  Status status_;
};

}  // namespace tern
