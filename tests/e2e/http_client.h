// A tiny blocking HTTP/1.1 client for tests of keel's HTTP endpoint: one request (or raw bytes)
// on a connection, the reply parsed by Content-Length, and whether the server closed after it.
#pragma once

#include <map>
#include <optional>
#include <string>

#include "test_util.h"

namespace keel::test {

struct HttpReply {
  int status = 0;                              // 0: no (complete) reply
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;
  std::string header(const std::string& lower_name) const {
    auto it = headers.find(lower_name);
    return it == headers.end() ? std::string() : it->second;
  }
};

// Reads one reply from fd (buffered bytes of a previous read in *rest). Empty on timeout/EOF.
// head_only: the reply to a HEAD request (Content-Length without a body).
inline HttpReply read_http_reply(int fd, std::string& rest,
                                 std::chrono::milliseconds timeout = std::chrono::seconds(10),
                                 bool head_only = false) {
  HttpReply reply;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  char buf[65536];
  for (;;) {
    size_t end = rest.find("\r\n\r\n");
    if (end != std::string::npos) {
      std::string head = rest.substr(0, end);
      size_t length = 0;
      size_t line_end = head.find("\r\n");
      std::string status_line = head.substr(0, line_end);
      size_t pos = line_end == std::string::npos ? head.size() : line_end + 2;
      while (pos < head.size()) {
        size_t next = head.find("\r\n", pos);
        if (next == std::string::npos) next = head.size();
        std::string line = head.substr(pos, next - pos);
        size_t colon = line.find(':');
        if (colon != std::string::npos) {
          std::string name = line.substr(0, colon);
          for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
          std::string value = line.substr(colon + 1);
          while (!value.empty() && value.front() == ' ') value.erase(0, 1);
          reply.headers[name] = value;
        }
        pos = next + 2;
      }
      if (reply.headers.count("content-length") && !head_only)
        length = std::stoul(reply.headers["content-length"]);
      if (rest.size() >= end + 4 + length) {
        reply.status = std::stoi(status_line.substr(9, 3));
        reply.body = rest.substr(end + 4, length);
        rest.erase(0, end + 4 + length);
        return reply;
      }
      reply.headers.clear();
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0 || !wait_ready(fd, POLLIN, left)) return {};
    ssize_t got = read_some(fd, buf, sizeof buf);
    if (got < 0 && (errno == EAGAIN || errno == EINTR)) continue;
    if (got <= 0) return {};
    rest.append(buf, static_cast<size_t>(got));
  }
}

// GET/POST/... on a fresh connection to 127.0.0.1:port. extra: header lines, each ending CRLF.
inline HttpReply http_request(int port, const std::string& method, const std::string& target,
                              const std::string& extra = {}, const std::string& body = {}) {
  Fd fd = connect_to(Endpoint::parse("127.0.0.1:" + std::to_string(port)));
  if (!fd.valid()) return {};
  std::string req = method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port) +
                    "\r\n" + extra;
  if (!body.empty() || method == "POST")
    req += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  req += "\r\n" + body;
  if (!write_all(fd.get(), req)) return {};
  std::string rest;
  return read_http_reply(fd.get(), rest, std::chrono::seconds(10), method == "HEAD");
}

inline HttpReply http_get(int port, const std::string& target, const std::string& extra = {}) {
  return http_request(port, "GET", target, extra);
}

}  // namespace keel::test
