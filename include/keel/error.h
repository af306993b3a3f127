// keel::Error: the one exception type of the set-up path (parse, bind, listen, open).
// The data path never throws; I/O failures become a CloseReason instead.
// Thread safety: a value type; safe to copy and throw from any thread.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

namespace keel {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message, int errno_value = 0)
      : std::runtime_error(message), errno_value_(errno_value) {}

  // The errno that caused the failure, or 0 when it was not a system call.
  int errno_value() const noexcept { return errno_value_; }

 private:
  int errno_value_;
};

// Throws Error("<operation> <object>: <strerror(err)>"), e.g. "bind 0.0.0.0:80: Permission denied".
[[noreturn]] void throw_system_error(std::string_view operation, std::string_view object, int err);

// strerror_r as a std::string (thread-safe).
std::string errno_text(int err);

}  // namespace keel
