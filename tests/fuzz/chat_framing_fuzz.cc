// libFuzzer: the line and length codecs (services/chat/framing.h) and sanitize. The first byte
// picks the framing (bit 0), the size limit (bits 1-6) and where the input is cut into pieces.
// Checks:
// - decoding in pieces, as a socket delivers, gives the same messages and the same end as
//   decoding the whole input; no message is over the limit; every message is exactly the bytes
//   it was framed in (a decoder never returns more, or other, bytes than it got); what stays
//   buffered is bounded by the limit;
// - encode then decode gives back every payload, in order, and consumes everything;
// - sanitize never grows text more than 3 times, and its output is already clean (sanitizing it
//   again changes nothing: no control, bidi control or invalid UTF-8 is left).
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "services/chat/framing.h"

namespace {

using keel::Buffer;
using keel::chat::decode;
using keel::chat::DecodeStatus;
using keel::chat::encode;
using keel::chat::Framing;

struct Decoded {
  std::vector<std::string> messages;
  DecodeStatus end = DecodeStatus::need_more;
};

// Decodes bytes appended in pieces (cuts from seed; seed 0: all at once), checking each message
// against the bytes it came from.
Decoded decode_all(Framing framing, std::string_view bytes, size_t max_bytes, unsigned seed) {
  Decoded d;
  Buffer in;
  size_t appended = 0, consumed = 0;
  unsigned x = seed * 2654435761u + 1;
  while (d.end != DecodeStatus::too_long) {
    size_t n = bytes.size() - appended;
    if (seed != 0) {
      x = x * 1103515245u + 12345u;
      n = std::min(n, size_t{1} + (x >> 16) % 24);
    }
    in.append(bytes.substr(appended, n));
    appended += n;
    for (;;) {
      std::string message;
      const size_t before = in.readable_bytes();
      d.end = decode(framing, in, max_bytes, message);
      if (d.end != DecodeStatus::message) {
        if (in.readable_bytes() != before) std::abort();  // only a message consumes
        break;
      }
      if (message.size() > max_bytes) std::abort();
      const size_t used = before - in.readable_bytes();
      std::string_view frame = bytes.substr(consumed, used);
      if (frame.size() != used) std::abort();
      consumed += used;
      // The frame is the message framed: "text\n", "text\r\n", or header + text.
      if (framing == Framing::lines) {
        if (frame != message + "\n" && frame != message + "\r\n") std::abort();
      } else if (frame != encode(Framing::length, message)) {
        std::abort();
      }
      d.messages.push_back(std::move(message));
    }
    if (d.end == DecodeStatus::need_more) {
      // At most one incomplete message (and its "\r" or length header) is held.
      if (in.readable_bytes() > max_bytes + (framing == Framing::lines ? 1 : 4)) std::abort();
      if (appended == bytes.size()) break;
    }
  }
  if (d.end == DecodeStatus::need_more && consumed + in.readable_bytes() != bytes.size())
    std::abort();
  return d;
}

void check_round_trip(Framing framing, std::string_view text, size_t max_bytes) {
  // Payloads: the text cut at each 0xff byte. A line cannot hold "\n" or end in "\r".
  std::vector<std::string> payloads;
  std::string wire;
  size_t start = 0;
  for (;;) {
    size_t cut = text.find('\xff', start);
    std::string p(text.substr(start, cut == std::string_view::npos ? cut : cut - start));
    if (framing == Framing::lines) std::erase(p, '\n');
    p.resize(std::min(p.size(), max_bytes));
    if (framing == Framing::lines)
      while (!p.empty() && p.back() == '\r') p.pop_back();
    wire += encode(framing, p);
    payloads.push_back(std::move(p));
    if (cut == std::string_view::npos) break;
    start = cut + 1;
  }
  Buffer in;
  in.append(wire);
  for (const std::string& want : payloads) {
    std::string got;
    if (decode(framing, in, max_bytes, got) != DecodeStatus::message || got != want) std::abort();
  }
  if (!in.empty()) std::abort();
}

void check_sanitize(std::string_view text) {
  std::string clean = keel::chat::sanitize(text);
  if (clean.size() > 3 * text.size()) std::abort();
  if (keel::chat::sanitize(clean) != clean) std::abort();
  for (char c : clean)
    if ((static_cast<unsigned char>(c) < 0x20 && c != '\t') || c == 0x7f) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const Framing framing = data[0] & 1 ? Framing::length : Framing::lines;
  const size_t max_bytes = (data[0] >> 1) & 0x3f;  // 0..63: small, so the limits are hit
  std::string_view bytes(reinterpret_cast<const char*>(data) + 1, size - 1);

  Decoded whole = decode_all(framing, bytes, max_bytes, 0);
  Decoded pieces = decode_all(framing, bytes, max_bytes, data[0] | 1u);
  if (whole.messages != pieces.messages || whole.end != pieces.end) std::abort();

  check_round_trip(framing, bytes, max_bytes);
  check_sanitize(bytes);
  return 0;
}
