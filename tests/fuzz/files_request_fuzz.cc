// libFuzzer: the keel files codec (src/services/files/protocol.h) on arbitrary bytes, decoded
// as the service decodes a client's stream (peek_frame with kMaxRequestPayload, parse_request,
// split_path, until the first malformed frame) and, on the same bytes, as a client decodes a
// server's (kMaxReplyPayload, parse_reply). The first byte chooses where the pieces are cut.
// Checks: a frame lies within the bytes it was found in and within the limit; a parsed
// request or reply re-encodes to the very bytes it came from (a path over kMaxPathBytes to its
// first kMaxPathBytes + 1 bytes, which the server still refuses); split_path's components are
// plain names that split again to themselves, and a refusal is not_allowed with a message;
// feeding the bytes in pieces, as a socket delivers them, sees the same frames and ends the
// same way as feeding them whole.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "services/files/protocol.h"

namespace {

using namespace keel::files;

void check(bool ok) {
  if (!ok) std::abort();
}

enum class Side { server, client };

// What one decode of a stream saw: per frame, its bytes and what it parsed to; then how the
// stream ended (incomplete, or the first malformed frame and why).
struct Decoded {
  std::vector<std::string> frames;
  Parse last = Parse::incomplete;
  std::string why;
  bool operator==(const Decoded&) const = default;
};

void check_path(const std::string& path) {
  std::vector<std::string> components;
  Failure failure;
  if (!split_path(path, components, failure)) {
    check(failure.code == ErrorCode::not_allowed && !failure.message.empty());
    check(components.empty());
    return;
  }
  check(path.size() <= kMaxPathBytes && (path.empty() || path[0] != '/'));
  std::string joined;
  for (const std::string& name : components) {
    check(!name.empty() && name != "." && name != "..");
    check(name.find('/') == std::string::npos && name.find('\0') == std::string::npos);
    if (!joined.empty()) joined += '/';
    joined += name;
  }
  check(joined.size() <= path.size());
  check(components.empty() || !is_reserved_name(components.back()));
  std::vector<std::string> again;
  check(split_path(joined, again, failure) && again == components);
}

// The request in a whole, well-formed frame: false when it is malformed (why set).
bool check_request(const Frame& frame, std::string_view original, std::string& why) {
  Request request;
  if (!parse_request(frame, request, why)) {
    check(!why.empty());
    return false;
  }
  check(request.type == frame.type && is_request(request.type));
  check((request.flags & ~(kPutResume | kPutReplace)) == 0);
  std::string encoded;
  append_request(encoded, request);
  if (request.path.size() <= kMaxPathBytes) {
    check(encoded == original);
  } else {
    // Sent cut to one byte over the limit: everything else is kept, and it is still refused.
    Frame cut;
    std::string cut_why;
    check(peek_frame(encoded, kMaxRequestPayload, cut, cut_why) == Parse::ok);
    check(cut.bytes == encoded.size());
    Request back;
    check(parse_request(cut, back, cut_why));
    check(back.path == request.path.substr(0, kMaxPathBytes + 1));
    check(back.offset == request.offset && back.length == request.length &&
          back.size == request.size && back.flags == request.flags);
  }
  check_path(request.path);
  return true;
}

bool check_reply(const Frame& frame, std::string_view original, std::string& why) {
  Reply reply;
  if (!parse_reply(frame, reply, why)) {
    check(!why.empty());
    return false;
  }
  check(reply.type == frame.type && is_reply(reply.type));
  std::string encoded;
  append_reply(encoded, reply);
  check(encoded == original);
  return true;
}

// Takes the whole frames at the start of held, as the side would; false once it is malformed.
bool take_frames(Side side, std::string_view& held, Decoded& out) {
  const size_t max_payload = side == Side::server ? kMaxRequestPayload : kMaxReplyPayload;
  for (;;) {
    Frame frame;
    out.last = peek_frame(held, max_payload, frame, out.why);
    if (out.last == Parse::incomplete) return true;
    if (out.last == Parse::malformed) {
      check(!out.why.empty());
      return false;
    }
    // Within the bytes given, and within the limit.
    check(frame.bytes == kFrameHeaderBytes + frame.payload.size());
    check(frame.bytes <= held.size() && frame.payload.size() <= max_payload);
    check(frame.payload.data() == held.data() + kFrameHeaderBytes);
    check(static_cast<uint8_t>(frame.type) == static_cast<uint8_t>(held[0]));
    std::string_view original = held.substr(0, frame.bytes);
    bool parsed = side == Side::server ? check_request(frame, original, out.why)
                                       : check_reply(frame, original, out.why);
    out.frames.emplace_back(original);
    if (!parsed) {
      out.last = Parse::malformed;
      return false;
    }
    held.remove_prefix(frame.bytes);
  }
}

Decoded decode_whole(Side side, std::string_view bytes) {
  Decoded out;
  take_frames(side, bytes, out);
  return out;
}

// The same stream arriving in pieces of 1..64 bytes, cut where step_seed says.
Decoded decode_pieces(Side side, std::string_view bytes, unsigned step_seed) {
  Decoded out;
  std::string held;
  unsigned x = step_seed * 2654435761u + 1;
  size_t from = 0;
  while (from < bytes.size()) {
    x = x * 1103515245u + 12345u;
    size_t n = std::min(bytes.size() - from, size_t{1} + (x >> 16) % 64);
    held.append(bytes.substr(from, n));
    from += n;
    std::string_view rest = held;
    if (!take_frames(side, rest, out)) return out;
    held.erase(0, held.size() - rest.size());
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const unsigned step_seed = data[0];
  std::string_view bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
  for (Side side : {Side::server, Side::client}) {
    Decoded whole = decode_whole(side, bytes);
    check(decode_pieces(side, bytes, step_seed) == whole);
  }
  return 0;
}
