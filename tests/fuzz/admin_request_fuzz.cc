// libFuzzer: arbitrary bytes as a TCP admin client's input. Lines are framed with the request
// cap, the token is found before any parse (admin_token.h), and only a request whose token
// checks out is parsed in full. Checks that nothing crashes and that the token scan agrees with
// a full parse about whether the request carries a top-level token.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "admin/admin_protocol.h"
#include "admin/admin_token.h"

namespace {

void check_line(const std::string& line) {
  std::optional<std::string> token = keel::admin::request_token(line);
  if (token && token->size() > line.size()) std::abort();
  auto req = nlohmann::ordered_json::parse(line, nullptr, false);
  if (!req.is_discarded() && req.is_object()) {
    auto it = req.find("token");
    // A well-formed object without a token never yields one; one with a string token always does
    // (the scan stops at the first "token" key whose value is a string).
    if (it == req.end() && token) std::abort();
    if (it != req.end() && it->is_string() && !token) std::abort();
  }
  if (token && keel::admin::constant_time_equal(*token, "s3cret") && req.is_object()) {
    auto cmd = req.find("cmd");
    if (cmd != req.end() && cmd->is_string()) (void)cmd->get_ref<const std::string&>().size();
    if (auto id = req.find("id"); id != req.end() && id->is_string())
      (void)keel::admin::parse_client_id(id->get_ref<const std::string&>());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  keel::admin::LineFramer framer(4096);
  framer.feed(std::string_view(reinterpret_cast<const char*>(data), size));
  std::string line;
  for (;;) {
    auto status = framer.next(line);
    if (status == keel::admin::LineFramer::Status::too_long) return 0;  // the server closes
    if (status == keel::admin::LineFramer::Status::need_more) break;
    if (line.size() > 4096) std::abort();
    check_line(line);
  }
  if (framer.take_rest(line)) check_line(line);
  return 0;
}
