// An HTTP/1.1 response as keel's HTTP endpoint writes it: status, content type, body and extra
// header fields; serialize() adds Content-Length, Connection: close when asked, and headers
// every reply carries (no caching, no MIME sniffing, no framing by other sites).
// Thread safety: value types and pure functions.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace keel::http {

struct Response {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  bool close = false;         // close the connection after this reply
  bool event_stream = false;  // the handler asks for a Server-Sent Events stream instead
};

// "Not Found" for 404; "Unknown" for a status keel never sends.
const char* reason_phrase(int status) noexcept;

// The bytes on the wire. head_only: a reply to HEAD (headers with the body's length, no body).
std::string serialize(const Response& response, bool head_only);

Response text_response(int status, std::string body);

}  // namespace keel::http
