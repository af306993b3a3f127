// Message framing for line-oriented services (chat): text lines or length-prefixed frames.
//   lines:  bytes up to '\n'; a trailing '\r' is dropped (so CRLF and LF both work).
//   length: a 4-byte big-endian length, then that many bytes of payload.
// Both are bounded: a line or frame longer than max_bytes is an error, never a buffer that grows.
// Thread safety: stateless functions.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "keel/net/buffer.h"

namespace keel::chat {

enum class Framing { lines, length };

enum class DecodeStatus {
  need_more,  // no complete message yet (the buffer holds less than max_bytes of one)
  message,    // one message taken from the buffer into `out`
  too_long,   // the next message is over max_bytes: the connection should be closed
};

// Takes the next complete message from in (consuming it) into out.
DecodeStatus decode(Framing framing, Buffer& in, size_t max_bytes, std::string& out);

// One message ready to send: text + "\n", or the length header + text.
std::string encode(Framing framing, std::string_view text);

// Replaces control characters (other than tab) with '?', so what one client sends can never
// drive another client's terminal.
std::string sanitize(std::string_view text);

}  // namespace keel::chat
