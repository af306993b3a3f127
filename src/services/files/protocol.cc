#include "services/files/protocol.h"

#include <cassert>
#include <cstdio>

namespace keel::files {
namespace {

constexpr size_t kMaxStrBytes = 0xffff;  // a str's u16 length

std::string hex_byte(uint8_t byte) {
  char text[8];
  std::snprintf(text, sizeof text, "0x%02x", byte);
  return text;
}

// "ENTRY (0x41) is a reply, not a request".
std::string wrong_direction(Type type, const char* is, const char* is_not) {
  std::string what = hex_byte(static_cast<uint8_t>(type));
  if (!is_request(type) && !is_reply(type)) return "unknown frame type " + what;
  return std::string(to_string(type)) + " (" + what + ") is a " + is + ", not a " + is_not;
}

// Reads a payload front to back. A read past the end yields zeros and marks the payload short;
// finish() then says what was wrong with it.
class PayloadReader {
 public:
  explicit PayloadReader(std::string_view payload) : in_(payload) {}

  uint8_t u8() {
    const char* p = take(1);
    return p ? static_cast<uint8_t>(*p) : 0;
  }
  uint64_t u64() {
    const char* p = take(8);
    if (!p) return 0;
    uint64_t value = 0;
    for (int i = 0; i < 8; ++i) value = value << 8 | static_cast<uint8_t>(p[i]);
    return value;
  }
  std::string str() {
    const char* p = take(2);
    if (!p) return {};
    size_t length = size_t{static_cast<uint8_t>(p[0])} << 8 | static_cast<uint8_t>(p[1]);
    p = take(length);
    return p ? std::string(p, length) : std::string();
  }
  Digest digest() {
    Digest digest{};
    if (const char* p = take(digest.size())) {
      for (size_t i = 0; i < digest.size(); ++i) digest[i] = static_cast<uint8_t>(p[i]);
    }
    return digest;
  }

  // True when the payload held exactly the fields read; else why says how it did not.
  bool finish(Type type, std::string& why) const {
    if (short_) {
      why = std::string(to_string(type)) + " payload of " + std::to_string(in_.size()) +
            " bytes is too short";
      return false;
    }
    if (pos_ != in_.size()) {
      why = std::string(to_string(type)) + " payload has " + std::to_string(in_.size() - pos_) +
            " bytes after its last field";
      return false;
    }
    return true;
  }

 private:
  const char* take(size_t n) {
    if (short_ || in_.size() - pos_ < n) {
      short_ = true;
      return nullptr;
    }
    const char* p = in_.data() + pos_;
    pos_ += n;
    return p;
  }

  std::string_view in_;
  size_t pos_ = 0;
  bool short_ = false;
};

// Appends one frame: the header now, its length patched in by the destructor.
class FrameWriter {
 public:
  FrameWriter(std::string& out, Type type) : out_(out), start_(out.size()) {
    out_.push_back(static_cast<char>(type));
    out_.append(4, '\0');
  }
  ~FrameWriter() {
    size_t length = out_.size() - start_ - kFrameHeaderBytes;
    for (int i = 0; i < 4; ++i) out_[start_ + 1 + i] = static_cast<char>(length >> (24 - 8 * i));
  }
  FrameWriter(const FrameWriter&) = delete;
  FrameWriter& operator=(const FrameWriter&) = delete;

  void u8(uint8_t value) { out_.push_back(static_cast<char>(value)); }
  void u64(uint64_t value) {
    for (int i = 0; i < 8; ++i) out_.push_back(static_cast<char>(value >> (56 - 8 * i)));
  }
  void str(std::string_view bytes) {
    assert(bytes.size() <= kMaxStrBytes);
    out_.push_back(static_cast<char>(bytes.size() >> 8));
    out_.push_back(static_cast<char>(bytes.size()));
    out_.append(bytes);
  }
  void digest(const Digest& digest) {
    out_.append(reinterpret_cast<const char*>(digest.data()), digest.size());
  }

 private:
  std::string& out_;
  size_t start_;
};

// Paths over the limit keep one byte too many, so they are still refused for their length
// (see append_request in protocol.h).
std::string_view sendable_path(std::string_view path) {
  return path.size() > kMaxPathBytes ? path.substr(0, kMaxPathBytes + 1) : path;
}

// Text for a person cut to max_bytes, backing off (at most 3 bytes) so a UTF-8 sequence is not
// split.
std::string_view cut_text(std::string_view text, size_t max_bytes) {
  if (text.size() <= max_bytes) return text;
  size_t n = max_bytes;
  while (n > 0 && n + 3 > max_bytes && (static_cast<uint8_t>(text[n]) & 0xc0) == 0x80) --n;
  return text.substr(0, n);
}

}  // namespace

const char* to_string(Type type) noexcept {
  switch (type) {
    case Type::list: return "LIST";
    case Type::stat: return "STAT";
    case Type::get: return "GET";
    case Type::hash: return "HASH";
    case Type::put: return "PUT";
    case Type::put_end: return "PUT_END";
    case Type::entry: return "ENTRY";
    case Type::list_end: return "LIST_END";
    case Type::stat_reply: return "STAT_REPLY";
    case Type::data: return "DATA";
    case Type::hash_reply: return "HASH_REPLY";
    case Type::put_ready: return "PUT_READY";
    case Type::put_done: return "PUT_DONE";
    case Type::error: return "ERROR";
  }
  return "?";
}

bool is_request(Type type) noexcept {
  auto value = static_cast<uint8_t>(type);
  return value >= static_cast<uint8_t>(Type::list) && value <= static_cast<uint8_t>(Type::put_end);
}

bool is_reply(Type type) noexcept {
  auto value = static_cast<uint8_t>(type);
  return (value >= static_cast<uint8_t>(Type::entry) &&
          value <= static_cast<uint8_t>(Type::put_done)) ||
         type == Type::error;
}

Parse peek_frame(std::string_view bytes, size_t max_payload, Frame& frame, std::string& why) {
  if (bytes.empty()) return Parse::incomplete;
  const auto type = static_cast<Type>(bytes[0]);
  if (!is_request(type) && !is_reply(type)) {
    why = "unknown frame type " + hex_byte(static_cast<uint8_t>(bytes[0]));
    return Parse::malformed;
  }
  if (bytes.size() < kFrameHeaderBytes) return Parse::incomplete;
  uint32_t length = 0;
  for (size_t i = 1; i < kFrameHeaderBytes; ++i) length = length << 8 | uint8_t(bytes[i]);
  if (length > max_payload) {
    why = std::string(to_string(type)) + " frame of " + std::to_string(length) +
          " bytes is over the limit of " + std::to_string(max_payload) + " bytes";
    return Parse::malformed;
  }
  if (bytes.size() - kFrameHeaderBytes < length) return Parse::incomplete;
  frame.type = type;
  frame.payload = bytes.substr(kFrameHeaderBytes, length);
  frame.bytes = kFrameHeaderBytes + length;
  return Parse::ok;
}

bool parse_request(const Frame& frame, Request& request, std::string& why) {
  if (!is_request(frame.type)) {
    why = wrong_direction(frame.type, "reply", "request");
    return false;
  }
  request = Request{};
  request.type = frame.type;
  PayloadReader in(frame.payload);
  switch (frame.type) {
    case Type::list:
    case Type::stat: request.path = in.str(); break;
    case Type::get:
      request.path = in.str();
      request.offset = in.u64();
      request.length = in.u64();
      break;
    case Type::hash:
      request.path = in.str();
      request.length = in.u64();
      break;
    case Type::put:
      request.path = in.str();
      request.size = in.u64();
      request.flags = in.u8();
      break;
    case Type::put_end: request.digest = in.digest(); break;
    default: break;  // replies: refused above
  }
  if (!in.finish(frame.type, why)) return false;
  if (request.flags & ~(kPutResume | kPutReplace)) {
    why = "unknown PUT flag bits " +
          hex_byte(static_cast<uint8_t>(request.flags & ~(kPutResume | kPutReplace))) +
          " (known: 1 resume, 2 replace)";
    return false;
  }
  return true;
}

bool parse_reply(const Frame& frame, Reply& reply, std::string& why) {
  if (!is_reply(frame.type)) {
    why = wrong_direction(frame.type, "request", "reply");
    return false;
  }
  reply = Reply{};
  reply.type = frame.type;
  PayloadReader in(frame.payload);
  uint8_t kind = static_cast<uint8_t>(Kind::file), truncated = 0,
          code = static_cast<uint8_t>(ErrorCode::io);
  switch (frame.type) {
    case Type::entry:
    case Type::stat_reply:
      kind = in.u8();
      reply.size = in.u64();
      reply.mtime_ns = static_cast<int64_t>(in.u64());
      if (frame.type == Type::entry) reply.name = in.str();
      break;
    case Type::list_end:
      reply.count = in.u64();
      truncated = in.u8();
      break;
    case Type::data:
      reply.size = in.u64();
      reply.offset = in.u64();
      reply.length = in.u64();
      break;
    case Type::hash_reply:
      reply.length = in.u64();
      reply.digest = in.digest();
      break;
    case Type::put_ready:
      reply.offset = in.u64();
      reply.digest = in.digest();
      break;
    case Type::put_done:
      reply.size = in.u64();
      reply.digest = in.digest();
      break;
    case Type::error:
      code = in.u8();
      reply.message = in.str();
      break;
    default: break;  // requests: refused above
  }
  if (!in.finish(frame.type, why)) return false;
  if (kind < static_cast<uint8_t>(Kind::file) || kind > static_cast<uint8_t>(Kind::other)) {
    why = "unknown kind " + std::to_string(kind) + " in " + to_string(frame.type) +
          " (known: 1 file, 2 directory, 3 other)";
    return false;
  }
  if (truncated > 1) {
    why = "LIST_END's truncated is " + std::to_string(truncated) + " (0 or 1)";
    return false;
  }
  if (code < 1 || code > kMaxErrorCode) {
    why = "unknown error code " + std::to_string(code) + " (known: 1 to " +
          std::to_string(kMaxErrorCode) + ")";
    return false;
  }
  reply.kind = static_cast<Kind>(kind);
  reply.truncated = truncated == 1;
  if (frame.type == Type::error) reply.code = static_cast<ErrorCode>(code);
  return true;
}

void append_request(std::string& out, const Request& request) {
  assert(is_request(request.type));
  if (!is_request(request.type)) return;  // a caller's bug; a wrong frame would be worse
  FrameWriter frame(out, request.type);
  switch (request.type) {
    case Type::list:
    case Type::stat: frame.str(sendable_path(request.path)); break;
    case Type::get:
      frame.str(sendable_path(request.path));
      frame.u64(request.offset);
      frame.u64(request.length);
      break;
    case Type::hash:
      frame.str(sendable_path(request.path));
      frame.u64(request.length);
      break;
    case Type::put:
      frame.str(sendable_path(request.path));
      frame.u64(request.size);
      frame.u8(request.flags);
      break;
    case Type::put_end: frame.digest(request.digest); break;
    default: break;
  }
}

void append_reply(std::string& out, const Reply& reply) {
  assert(is_reply(reply.type));
  if (!is_reply(reply.type)) return;  // a caller's bug; a wrong frame would be worse
  // The fixed fields before a str: ENTRY's kind, size and mtime; ERROR's code.
  constexpr size_t kMaxName = kMaxReplyPayload - 1 - 8 - 8 - 2;
  constexpr size_t kMaxMessage = kMaxReplyPayload - 1 - 2;
  static_assert(kMaxName <= kMaxStrBytes && kMaxMessage <= kMaxStrBytes);
  FrameWriter frame(out, reply.type);
  switch (reply.type) {
    case Type::entry:
    case Type::stat_reply:
      frame.u8(static_cast<uint8_t>(reply.kind));
      frame.u64(reply.size);
      frame.u64(static_cast<uint64_t>(reply.mtime_ns));
      if (reply.type == Type::entry) frame.str(cut_text(reply.name, kMaxName));
      break;
    case Type::list_end:
      frame.u64(reply.count);
      frame.u8(reply.truncated ? 1 : 0);
      break;
    case Type::data:
      frame.u64(reply.size);
      frame.u64(reply.offset);
      frame.u64(reply.length);
      break;
    case Type::hash_reply:
      frame.u64(reply.length);
      frame.digest(reply.digest);
      break;
    case Type::put_ready:
      frame.u64(reply.offset);
      frame.digest(reply.digest);
      break;
    case Type::put_done:
      frame.u64(reply.size);
      frame.digest(reply.digest);
      break;
    case Type::error:
      frame.u8(static_cast<uint8_t>(reply.code));
      frame.str(cut_text(reply.message, kMaxMessage));
      break;
    default: break;
  }
}

bool split_path(std::string_view path, std::vector<std::string>& components, Failure& failure) {
  components.clear();
  auto refuse = [&](std::string message) {
    components.clear();
    failure = Failure{ErrorCode::not_allowed, std::move(message)};
    return false;
  };
  if (path.size() > kMaxPathBytes)
    return refuse("path is " + std::to_string(path.size()) + " bytes long, over the limit of " +
                  std::to_string(kMaxPathBytes) + " bytes");
  if (!path.empty() && path.front() == '/')
    return refuse("absolute paths are not allowed: paths are relative to the served root");
  if (path.find('\0') != std::string_view::npos) return refuse("path may not contain a NUL byte");
  while (!path.empty()) {
    size_t slash = path.find('/');
    std::string_view name = path.substr(0, slash);
    path = slash == std::string_view::npos ? std::string_view() : path.substr(slash + 1);
    if (name.empty() || name == ".") continue;
    if (name == "..") return refuse("path may not contain '..'");
    components.emplace_back(name);
  }
  if (!components.empty() && is_reserved_name(components.back()))
    return refuse("names of the form .NAME.keel-part are reserved for uploads in progress");
  return true;
}

bool is_reserved_name(std::string_view name) {
  constexpr std::string_view kSuffix = ".keel-part";
  return name.size() >= kSuffix.size() && name.front() == '.' &&
         name.substr(name.size() - kSuffix.size()) == kSuffix;
}

std::string part_name(std::string_view name) {
  std::string part = ".";
  part.append(name);
  part.append(".keel-part");
  return part;
}

}  // namespace keel::files
