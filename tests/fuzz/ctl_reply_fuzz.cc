// libFuzzer: what keel ctl does with the bytes an admin endpoint sends back: ReplyLine collects
// them in pieces (the first byte chooses the cuts), then the line is parsed and rendered for
// every command. Checks: the line is exactly the bytes before the first "\n" (never more, never
// other bytes), each byte is scanned at most once, nothing is added once it is complete; and
// rendering any JSON object neither throws nor lets a value start a line of its own (each cell
// stays on its row: one line per client for list, one line for send, broadcast and kick).
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "cli/ctl.h"

namespace {

size_t lines_in(const std::string& text) {
  return std::count(text.begin(), text.end(), '\n');
}

void check_render(const nlohmann::ordered_json& reply) {
  for (const char* cmd : {"list", "stats", "send", "broadcast", "kick", "other"}) {
    std::string out;
    try {
      out = keel::cli::render_reply(cmd, reply);
    } catch (...) {
      std::abort();
    }
    if (out.empty() || out.back() != '\n') std::abort();
    const std::string_view c = cmd;
    if ((c == "send" || c == "broadcast" || c == "kick" || c == "other") && lines_in(out) != 1)
      std::abort();
    if (c == "list") {
      auto clients = reply.find("clients");
      size_t rows = clients != reply.end() && clients->is_array() ? clients->size() : 0;
      if (lines_in(out) != 1 + rows) std::abort();
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string_view bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
  const size_t nl = bytes.find('\n');
  const std::string_view want = bytes.substr(0, nl);

  keel::cli::ReplyLine reply;
  unsigned x = data[0] * 2654435761u + 1;
  size_t fed = 0;
  while (fed < bytes.size()) {
    x = x * 1103515245u + 12345u;
    size_t n = std::min(bytes.size() - fed, size_t{1} + (x >> 16) % 32);
    const bool was_complete = reply.complete();
    const std::string before = reply.line();
    const bool done = reply.append(bytes.substr(fed, n));
    fed += n;
    if (done != reply.complete()) std::abort();
    if (was_complete && (reply.line() != before || !done)) std::abort();
    // Never more bytes than were given, each scanned at most once.
    if (reply.size() > fed || reply.bytes_scanned() > fed) std::abort();
    if (!done && std::string_view(reply.line()) != bytes.substr(0, fed)) std::abort();
  }
  if (reply.complete() != (nl != std::string_view::npos)) std::abort();
  if (reply.complete() && reply.bytes_scanned() != nl + 1) std::abort();
  if (std::string_view(reply.line()) != want) std::abort();

  if (!reply.complete()) return 0;
  auto json = nlohmann::ordered_json::parse(reply.line(), nullptr, false);
  if (json.is_discarded() || !json.is_object()) return 0;  // keel ctl: "reply is not a JSON object"
  check_render(json);
  return 0;
}
