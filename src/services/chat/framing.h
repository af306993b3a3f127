// Message framing for line-oriented services (chat): text lines or length-prefixed frames.
//   lines:  bytes up to '\n'; a trailing '\r' is dropped (so CRLF and LF both work).
//   length: a 4-byte big-endian length, then that many bytes of payload.
// Both are bounded: a line or frame longer than max_bytes is an error, never a buffer that grows.
// Thread safety: stateless functions.
#pragma once

#include <cstddef>
#include <cstdint>
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

// One message ready to send: text + "\n", or the length header + text. decode gives text back
// whole, except that a line cannot hold "\n" or end in "\r" (sanitized text does neither).
std::string encode(Framing framing, std::string_view text);

// What one client sends must never drive another client's terminal or reorder its text:
// control characters (C0 but tab, DEL, C1 U+0080..U+009F) and the bidirectional embedding,
// override and isolate controls (U+202A..U+202E, U+2066..U+2069) become '?'; bytes that are
// not well-formed UTF-8 (stray continuation bytes, overlong forms, surrogates, beyond U+10FFFF,
// cut-off sequences) become U+FFFD, one per byte that starts no well-formed sequence. The rest,
// including all other UTF-8, passes through unchanged. The result is at most 3 times as long.
std::string sanitize(std::string_view text);

// The length of the well-formed UTF-8 sequence at the start of s (RFC 3629: no overlongs, no
// surrogates, nothing above U+10FFFF) and its code point, or 0 when it is not one (s empty,
// cut short, or malformed).
size_t utf8_sequence(std::string_view s, uint32_t& code_point);
// The bidirectional embedding, override and isolate controls (U+202A..U+202E, U+2066..U+2069).
bool reorders_text(uint32_t code_point);

}  // namespace keel::chat
