// libFuzzer: keel ctl watch's display of what a watched client sent (any bytes) and of the
// event lines an admin endpoint sends. Checks: escape_bytes never lets a control character
// (C0, DEL, or a C1 control in UTF-8) or an invalid UTF-8 byte through, and escaping is
// reversible in size (never shorter than the input); every line render_watch_event makes ends
// in "\n" and holds no other control character, whatever the event.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "admin/base64.h"
#include "cli/watch_format.h"

namespace {

void check_safe(std::string_view text, bool newlines_allowed) {
  for (size_t i = 0; i < text.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(text[i]);
    if (c == '\n' && newlines_allowed) continue;
    if (c < 0x20 || c == 0x7f) std::abort();
    if (c == 0xc2 && i + 1 < text.size() && static_cast<unsigned char>(text[i + 1]) < 0xa0)
      std::abort();  // U+0080..U+009F
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  std::string escaped = keel::cli::escape_bytes(bytes);
  check_safe(escaped, false);
  if (escaped.size() < bytes.size()) std::abort();
  // The bytes as a data event's payload, and as an event line.
  static const char* kDirs[] = {"in", "out"};
  nlohmann::ordered_json ev{{"event", "data"},
                            {"dir", kDirs[size % 2]},
                            {"at", std::string(bytes.substr(0, 40))},
                            {"data", keel::admin::base64_encode(bytes)}};
  std::string out = keel::cli::render_watch_event(ev);
  check_safe(out, true);
  // One line per line of the payload (an unterminated tail is a line too).
  size_t lines = std::count(out.begin(), out.end(), '\n');
  size_t want = std::count(bytes.begin(), bytes.end(), '\n') +
                (bytes.empty() || bytes.back() == '\n' ? 0 : 1);
  if (lines != want || (!out.empty() && out.back() != '\n')) std::abort();
  auto json = nlohmann::ordered_json::parse(bytes, nullptr, false);
  if (json.is_object()) {
    out = keel::cli::render_watch_event(json);
    check_safe(out, true);
    if (!out.empty() && out.back() != '\n') std::abort();
  }
  return 0;
}
