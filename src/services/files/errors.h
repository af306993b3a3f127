// The keel files protocol's error codes (docs/protocols.md, "keel files"), shared by the
// service, its path resolution and the clients.
#pragma once

#include <cstdint>
#include <string>

namespace keel::files {

enum class ErrorCode : uint8_t {
  bad_request = 1,  // malformed frame or request: the server closes after saying so
  not_found = 2,
  not_allowed = 3,  // outside the root, a reserved name, or a read-only server
  exists = 4,
  too_large = 5,  // over --max-file-bytes
  busy = 6,       // the same name is being uploaded, or --max-transfers are in use
  range = 7,      // offset or hash length past the end of the file
  mismatch = 8,   // the upload's SHA-256 differs from what arrived
  io = 9,         // the server's own I/O failed
  not_a_file = 10,
  not_a_directory = 11,
};
inline constexpr uint8_t kMaxErrorCode = 11;

// "not_found": a code's name in messages and JSON.
constexpr const char* to_string(ErrorCode code) noexcept {
  switch (code) {
    case ErrorCode::bad_request: return "bad_request";
    case ErrorCode::not_found: return "not_found";
    case ErrorCode::not_allowed: return "not_allowed";
    case ErrorCode::exists: return "exists";
    case ErrorCode::too_large: return "too_large";
    case ErrorCode::busy: return "busy";
    case ErrorCode::range: return "range";
    case ErrorCode::mismatch: return "mismatch";
    case ErrorCode::io: return "io";
    case ErrorCode::not_a_file: return "not_a_file";
    case ErrorCode::not_a_directory: return "not_a_directory";
  }
  return "?";
}

// A request that cannot be served: the code and a message for the person at the client.
struct Failure {
  ErrorCode code = ErrorCode::io;
  std::string message;
};

}  // namespace keel::files
