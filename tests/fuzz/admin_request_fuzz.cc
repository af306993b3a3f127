// libFuzzer: arbitrary bytes as a TCP admin client's input. Lines are framed with the request
// cap, the token is found before any parse (admin_token.h), and only a request whose token
// checks out is parsed in full. Checks that nothing crashes, that the token scan agrees with a
// full parse about whether the request carries a top-level token, and that a client named by
// "id" or "to" is either one or an error that names the field.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "admin/admin_fields.h"
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
    // A client named by "id" or "to" is a client, or an error that names the field (and shows
    // at most 64 bytes of the value).
    if (auto id = req.find("id"); id != req.end()) {
      std::string problem;
      bool named = keel::admin::client_id_field(*id, "id", &problem).has_value();
      if (named == !problem.empty() || (!named && !problem.starts_with("\"id\" ")) ||
          problem.size() > 200)
        std::abort();
    }
    if (auto to = req.find("to"); to != req.end()) {
      std::string problem;
      auto who = keel::admin::client_ref_field(*to, &problem);
      if (who.has_value() == !problem.empty() || (!who && !problem.starts_with("\"to\" ")) ||
          problem.size() > 200)
        std::abort();
      if (auto* address = who ? std::get_if<std::string>(&*who) : nullptr;
          address && address->empty())
        std::abort();
    }
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
