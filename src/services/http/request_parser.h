// HTTP/1.1 request parser for keel's HTTP endpoint (--http): the request line, the header
// fields and a Content-Length body, with hard limits, from the bytes buffered so far. It is
// written here rather than taken from Debian's libhttp-parser because that library is
// unmaintained upstream (archived in 2022) and callback-driven, while keel needs only this
// small, bounded subset: origin-form targets, HTTP/1.0 and 1.1, no chunked request bodies.
// Answers: complete (a request and how many bytes it took), need_more, or an error with the
// status to reply with (400 malformed, 411 Transfer-Encoding, 413 body too large, 431 head too
// large, 505 version); after an error the connection must be closed.
// Thread safety: pure functions on values.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace keel::http {

struct Limits {
  size_t max_head_bytes = 8 * 1024;   // request line + header fields + the blank line
  size_t max_body_bytes = 64 * 1024;  // Content-Length
  size_t max_header_fields = 100;
};

struct Request {
  std::string method;  // "GET", case-sensitive as RFC 9110 says
  std::string target;  // "/api/clients?service=chat"
  std::string path;    // "/api/clients"
  std::string query;   // "service=chat" (without '?'; raw, percent-encoded)
  int minor_version = 1;
  // Field names lower-cased; values with surrounding whitespace removed, in arrival order.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  bool keep_alive = true;

  // The first field of that (lower-case) name, or nullptr.
  const std::string* header(std::string_view lower_name) const noexcept;
};

struct ParseResult {
  enum class Status { complete, need_more, error };
  Status status = Status::need_more;
  size_t consumed = 0;  // complete: the request's bytes (head + body)
  int http_status = 0;  // error: 400, 411, 413, 431 or 505
  std::string error;    // error: what was wrong, for the reply body
};

// Parses the request at the start of bytes into out (overwritten).
ParseResult parse_request(std::string_view bytes, const Limits& limits, Request& out);

// The percent-decoded value of a query parameter ("+" is a space), or nullopt when absent.
std::optional<std::string> query_param(std::string_view query, std::string_view name);

// Percent-decoding; nullopt on a bad escape.
std::optional<std::string> percent_decode(std::string_view text, bool plus_is_space);

}  // namespace keel::http
