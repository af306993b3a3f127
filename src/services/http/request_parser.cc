#include "services/http/request_parser.h"

#include <algorithm>
#include <charconv>

namespace keel::http {
namespace {

using Status = ParseResult::Status;

ParseResult fail(int http_status, std::string why) {
  ParseResult r;
  r.status = Status::error;
  r.http_status = http_status;
  r.error = std::move(why);
  return r;
}

// RFC 9110 tchar.
bool is_tchar(char c) noexcept {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool is_token(std::string_view s) noexcept {
  return !s.empty() && std::all_of(s.begin(), s.end(), is_tchar);
}

// Field values: visible ASCII, obs-text (0x80-0xFF), space and tab; never CR, LF or NUL.
bool is_field_value(std::string_view s) noexcept {
  for (unsigned char c : s)
    if ((c < 0x20 && c != '\t') || c == 0x7f) return false;
  return true;
}

// Request targets: origin-form only ("/path?query"), visible ASCII.
bool is_origin_form(std::string_view s) noexcept {
  if (s.empty() || s.front() != '/') return false;
  for (unsigned char c : s)
    if (c <= 0x20 || c >= 0x7f) return false;
  return true;
}

std::string_view trim(std::string_view s) noexcept {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

bool has_token(std::string_view list, std::string_view token) {
  // Comma-separated, case-insensitive ("Connection: keep-alive, Upgrade").
  while (!list.empty()) {
    size_t comma = list.find(',');
    std::string_view item = trim(list.substr(0, comma));
    if (lower(item) == token) return true;
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return false;
}

// The end of the head: the index just past the empty line, or npos. Lines end in LF, with an
// optional CR before it (RFC 9112 lets a server accept a bare LF).
size_t head_end(std::string_view bytes) noexcept {
  size_t from = 0;
  while (true) {
    size_t nl = bytes.find('\n', from);
    if (nl == std::string_view::npos) return nl;
    size_t next = nl + 1;
    if (next < bytes.size() && bytes[next] == '\n') return next + 1;
    if (next + 1 < bytes.size() && bytes[next] == '\r' && bytes[next + 1] == '\n') return next + 2;
    from = next;
  }
}

// Splits off one line (without CR LF); false when text is done.
bool next_line(std::string_view& text, std::string_view& line) noexcept {
  if (text.empty()) return false;
  size_t nl = text.find('\n');
  line = text.substr(0, nl);
  text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  return true;
}

}  // namespace

const std::string* Request::header(std::string_view lower_name) const noexcept {
  for (const auto& [name, value] : headers)
    if (name == lower_name) return &value;
  return nullptr;
}

ParseResult parse_request(std::string_view bytes, const Limits& limits, Request& out) {
  out = Request{};
  // Robustness (RFC 9112 2.2): empty lines before a request line are skipped.
  size_t skipped = 0;
  while (skipped < bytes.size() && (bytes[skipped] == '\r' || bytes[skipped] == '\n')) {
    if (++skipped > 4) return fail(400, "empty lines before the request");
  }
  std::string_view rest = bytes.substr(skipped);
  size_t end = head_end(rest);
  if (end == std::string_view::npos) {
    if (rest.size() > limits.max_head_bytes)
      return fail(431, "request line and header fields over " +
                           std::to_string(limits.max_head_bytes) + " bytes");
    return {};
  }
  if (end > limits.max_head_bytes)
    return fail(431, "request line and header fields over " +
                         std::to_string(limits.max_head_bytes) + " bytes");
  std::string_view head = rest.substr(0, end);

  std::string_view line;
  next_line(head, line);
  size_t sp1 = line.find(' ');
  size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos)
    return fail(400, "malformed request line");
  std::string_view method = line.substr(0, sp1);
  std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  std::string_view version = line.substr(sp2 + 1);
  if (!is_token(method)) return fail(400, "malformed method");
  if (!is_origin_form(target)) return fail(400, "the request target must be a path (\"/...\")");
  if (version.size() != 8 || !version.starts_with("HTTP/") || version[6] != '.' ||
      version[5] < '0' || version[5] > '9' || version[7] < '0' || version[7] > '9')
    return fail(400, "malformed HTTP version");
  if (version[5] != '1') return fail(505, "only HTTP/1.0 and HTTP/1.1 are served");
  out.method = method;
  out.target = target;
  size_t q = target.find('?');
  out.path = target.substr(0, q);
  if (q != std::string_view::npos) out.query = target.substr(q + 1);
  out.minor_version = version[7] - '0';

  while (next_line(head, line) && !line.empty()) {
    if (line.front() == ' ' || line.front() == '\t')
      return fail(400, "obsolete line folding in a header field");
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) return fail(400, "a header field without ':'");
    std::string_view name = line.substr(0, colon);
    std::string_view value = trim(line.substr(colon + 1));
    if (!is_token(name)) return fail(400, "malformed header field name");
    if (!is_field_value(value)) return fail(400, "control characters in a header field");
    if (out.headers.size() >= limits.max_header_fields)
      return fail(431, "more than " + std::to_string(limits.max_header_fields) + " header fields");
    out.headers.emplace_back(lower(name), std::string(value));
  }

  if (out.header("transfer-encoding"))
    return fail(411, "Transfer-Encoding request bodies are not accepted: send Content-Length");
  if (out.minor_version == 1 && !out.header("host")) return fail(400, "missing Host");
  size_t body_bytes = 0;
  bool seen_length = false;
  for (const auto& [name, value] : out.headers) {
    if (name != "content-length") continue;
    size_t n = 0;
    auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
    if (value.empty() || ec != std::errc() || ptr != value.data() + value.size() ||
        value.front() == '+' || value.front() == '-')
      return fail(400, "malformed Content-Length");
    if (seen_length && n != body_bytes) return fail(400, "conflicting Content-Length fields");
    seen_length = true;
    body_bytes = n;
  }
  if (body_bytes > limits.max_body_bytes)
    return fail(413, "request body over " + std::to_string(limits.max_body_bytes) + " bytes");
  size_t total = skipped + end + body_bytes;
  if (bytes.size() < total) return {};
  out.body = bytes.substr(skipped + end, body_bytes);

  const std::string* connection = out.header("connection");
  if (out.minor_version == 0)
    out.keep_alive = connection && has_token(*connection, "keep-alive");
  else
    out.keep_alive = !(connection && has_token(*connection, "close"));
  ParseResult r;
  r.status = Status::complete;
  r.consumed = total;
  return r;
}

std::optional<std::string> percent_decode(std::string_view text, bool plus_is_space) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '+' && plus_is_space) {
      out += ' ';
    } else if (c == '%') {
      if (i + 2 >= text.size()) return std::nullopt;
      unsigned value = 0;
      auto [ptr, ec] = std::from_chars(text.data() + i + 1, text.data() + i + 3, value, 16);
      if (ec != std::errc() || ptr != text.data() + i + 3) return std::nullopt;
      out += static_cast<char>(value);
      i += 2;
    } else {
      out += c;
    }
  }
  return out;
}

std::optional<std::string> query_param(std::string_view query, std::string_view name) {
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    size_t eq = pair.find('=');
    std::optional<std::string> key = percent_decode(pair.substr(0, eq), true);
    if (key && *key == name)
      return eq == std::string_view::npos ? std::string()
                                          : percent_decode(pair.substr(eq + 1), true);
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return std::nullopt;
}

}  // namespace keel::http
