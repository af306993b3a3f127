#include "keel/error.h"

#include <string.h>

namespace keel {

std::string errno_text(int err) {
  char buf[256];
  // GNU strerror_r returns the message pointer (maybe not buf).
  return ::strerror_r(err, buf, sizeof buf);
}

void throw_system_error(std::string_view operation, std::string_view object, int err) {
  std::string message(operation);
  if (!object.empty()) {
    message += ' ';
    message += object;
  }
  message += ": ";
  message += errno_text(err);
  throw Error(message, err);
}

}  // namespace keel
