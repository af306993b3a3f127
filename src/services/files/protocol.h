// The keel files protocol, version 1 (docs/protocols.md, "keel files"): its frames, requests,
// replies and paths, encoded and decoded. Pure logic, no I/O: the service and the clients feed
// it the bytes they have and send the bytes it appends.
//   frame:   type:u8 length:u32 payload[length], integers big-endian
//   str:     u16 length + bytes; sha256: 32 raw bytes; i64: two's complement in a u64
// Untrusted input is bounded: a frame's length is checked against a maximum from its header
// alone, and a payload must parse exactly (nothing short, nothing left over).
// Thread safety: stateless functions and value types.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "services/files/errors.h"
#include "services/files/kind.h"
#include "services/files/sha256.h"

namespace keel::files {

inline constexpr size_t kFrameHeaderBytes = 5;
inline constexpr size_t kMaxRequestPayload = 8192;
inline constexpr size_t kMaxReplyPayload = 65536;
inline constexpr size_t kMaxPathBytes = 4096;
inline constexpr uint64_t kToEnd = UINT64_MAX;     // GET's length: up to the end of the file
inline constexpr size_t kMaxListEntries = 100000;  // LIST stops here (LIST_END truncated)

enum class Type : uint8_t {
  // Requests (client to server).
  list = 0x01,
  stat = 0x02,
  get = 0x03,
  hash = 0x04,
  put = 0x05,
  put_end = 0x06,
  // Replies (server to client).
  entry = 0x41,
  list_end = 0x42,
  stat_reply = 0x43,
  data = 0x44,
  hash_reply = 0x45,
  put_ready = 0x46,
  put_done = 0x47,
  error = 0x7f,
};
// "GET", "PUT_READY": a type's name in the spec, for messages; "?" for a value that is none.
const char* to_string(Type type) noexcept;
bool is_request(Type type) noexcept;
bool is_reply(Type type) noexcept;

// PUT's flags; any other bit is a bad request.
inline constexpr uint8_t kPutResume = 1;
inline constexpr uint8_t kPutReplace = 2;

// One request; the fields its type does not carry stay zero.
//   list, stat: path   get: path offset length   hash: path length
//   put: path size flags   put_end: digest
struct Request {
  Type type = Type::list;
  std::string path{};
  uint64_t offset = 0;
  uint64_t length = 0;
  uint64_t size = 0;
  uint8_t flags = 0;
  Digest digest{};
};

// One reply; the fields its type does not carry stay at their defaults.
//   entry: kind size mtime_ns name   list_end: count truncated
//   stat_reply: kind size mtime_ns   data: size offset length (then `length` raw bytes)
//   hash_reply: length digest   put_ready: offset digest   put_done: size digest
//   error: code message
struct Reply {
  Type type = Type::error;
  Kind kind = Kind::file;
  uint64_t size = 0;
  uint64_t offset = 0;
  uint64_t length = 0;
  uint64_t count = 0;
  int64_t mtime_ns = 0;  // nanoseconds since the epoch
  bool truncated = false;
  std::string name{};
  Digest digest{};
  ErrorCode code = ErrorCode::io;
  std::string message{};
};

enum class Parse { ok, incomplete, malformed };

// A whole frame at the start of some bytes; payload points into them.
struct Frame {
  Type type = Type::list;
  std::string_view payload;
  size_t bytes = 0;  // header + payload: how much to consume
};

// Looks at the start of bytes: ok with frame when a whole frame is there; incomplete when more
// bytes are needed; malformed (why set) when the type byte is not a type of the protocol (told
// from the first byte) or the length is over max_payload (told from the header, before any of
// the payload arrives). A caller that feeds bytes as they come gets the same answer as one
// that has them all at once.
Parse peek_frame(std::string_view bytes, size_t max_payload, Frame& frame, std::string& why);

// The request in a frame; false (why set) when it is malformed: a reply type, a payload too
// short or with bytes left over, or unknown PUT flag bits. The path is not checked here (the
// service answers a bad path with ERROR not_allowed, not bad_request): see split_path.
bool parse_request(const Frame& frame, Request& request, std::string& why);
// The reply in a frame; false (why set) when it is malformed: a request type, a payload too
// short or with bytes left over, a kind, truncated flag or error code the protocol does not
// have.
bool parse_reply(const Frame& frame, Reply& reply, std::string& why);

// Append one whole frame to out. The fixed-width fields are written as given (a caller that
// sets unknown PUT flags gets a request the server refuses). A str holds at most 65535 bytes
// and a frame's payload is bounded, so a string that would not fit is cut rather than making
// a frame the reader calls malformed:
//   - a path over kMaxPathBytes is sent as its first kMaxPathBytes + 1 bytes: still over the
//     limit, so the server refuses it (not_allowed) instead of reading a shorter, different
//     path, and the frame stays under kMaxRequestPayload. Check paths with split_path first.
//   - an ERROR message is cut at a UTF-8 boundary to fit kMaxReplyPayload;
//   - an ENTRY name likewise (never for a real one: Linux names are at most 255 bytes).
void append_request(std::string& out, const Request& request);
void append_reply(std::string& out, const Reply& reply);

// A request's path as the components to walk from the served root, with "" and "." dropped
// ("", "." and "./" are the root itself: no components). False, with failure = {not_allowed, a
// message for the person at the client}, for a path over kMaxPathBytes, an absolute path, a
// NUL byte, a ".." component, or a reserved final name (is_reserved_name).
bool split_path(std::string_view path, std::vector<std::string>& components, Failure& failure);

// A name the server keeps for itself: starts with '.' and ends with ".keel-part" (an upload in
// progress, part_name). Such names are never listed and cannot be asked for.
bool is_reserved_name(std::string_view name);
// ".NAME.keel-part": where an upload of NAME is written until it is complete.
std::string part_name(std::string_view name);

}  // namespace keel::files
