// libFuzzer: the HTTP endpoint's request parser on arbitrary bytes, whole and as every prefix
// a socket might deliver. Checks: a complete request never claims more bytes than it was given,
// its head and body stay within the limits, and taking exactly its bytes gives the same request;
// every shorter prefix needs more or fails with the same status (an early 431/413/400 is fine,
// a different verdict is not); errors carry one of the statuses the endpoint sends.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "services/http/request_parser.h"

using keel::http::Limits;
using keel::http::ParseResult;
using keel::http::Request;
using Status = ParseResult::Status;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  Limits limits;
  limits.max_head_bytes = 512;  // small limits so the fuzzer reaches them
  limits.max_body_bytes = 256;
  limits.max_header_fields = 8;
  Request whole;
  ParseResult r = keel::http::parse_request(bytes, limits, whole);
  if (r.status == Status::error) {
    int s = r.http_status;
    if (s != 400 && s != 411 && s != 413 && s != 431 && s != 505) std::abort();
    if (r.error.empty()) std::abort();
  }
  if (r.status == Status::complete) {
    if (r.consumed == 0 || r.consumed > bytes.size()) std::abort();
    if (whole.body.size() > limits.max_body_bytes) std::abort();
    if (whole.headers.size() > limits.max_header_fields) std::abort();
    if (whole.path.empty() || whole.path[0] != '/') std::abort();
    Request exact;
    ParseResult again = keel::http::parse_request(bytes.substr(0, r.consumed), limits, exact);
    if (again.status != Status::complete || again.consumed != r.consumed) std::abort();
    if (exact.method != whole.method || exact.target != whole.target || exact.body != whole.body ||
        exact.headers != whole.headers || exact.keep_alive != whole.keep_alive)
      std::abort();
  }
  // Prefixes: never complete before the whole request; an error on a prefix is final.
  size_t stop = r.status == Status::complete ? r.consumed : bytes.size();
  for (size_t n = 0; n < stop; n += 1 + n / 8) {
    Request part;
    ParseResult p = keel::http::parse_request(bytes.substr(0, n), limits, part);
    if (p.status == Status::complete) std::abort();
    if (p.status == Status::error && r.status != Status::error) std::abort();
  }
  return 0;
}
