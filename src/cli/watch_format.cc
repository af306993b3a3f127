// keel ctl watch's display (cli/watch_format.h). Apart from the socket code so the unit tests
// and a fuzzer can reach it.
#include "cli/watch_format.h"

#include <cstdint>
#include <cstdio>
#include <optional>
#include <vector>

#include "admin/base64.h"

namespace keel::cli {
namespace {

using Json = nlohmann::ordered_json;

// Length of the valid UTF-8 sequence (2-4 bytes, no overlongs, no surrogates, <= U+10FFFF)
// starting at s[i], or 0.
size_t utf8_sequence(std::string_view s, size_t i) {
  auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char b = byte(i);
  size_t n = b >= 0xC2 && b <= 0xDF   ? 2
             : b >= 0xE0 && b <= 0xEF ? 3
             : b >= 0xF0 && b <= 0xF4 ? 4
                                      : 0;
  if (n == 0 || i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k)
    if ((byte(i + k) & 0xC0) != 0x80) return 0;
  unsigned char b1 = byte(i + 1);
  if (b == 0xE0 && b1 < 0xA0) return 0;  // overlong
  if (b == 0xED && b1 > 0x9F) return 0;  // surrogate
  if (b == 0xF0 && b1 < 0x90) return 0;  // overlong
  if (b == 0xF4 && b1 > 0x8F) return 0;  // above U+10FFFF
  if (b == 0xC2 && b1 < 0xA0) return 0;  // C1 controls (U+0080..U+009F) act on terminals
  return n;
}

void hex(std::string& out, unsigned char c) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "\\x%02x", c);
  out += buf;
}

const std::string* string_field(const Json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? &it->get_ref<const std::string&>() : nullptr;
}

}  // namespace

std::string escape_bytes(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  for (size_t i = 0; i < bytes.size();) {
    unsigned char c = static_cast<unsigned char>(bytes[i]);
    if (c >= 0x20 && c < 0x7f) {
      if (c == '\\') out += '\\';
      out += static_cast<char>(c);
      ++i;
    } else if (c == '\t') {
      out += "\\t", ++i;
    } else if (c == '\r') {
      out += "\\r", ++i;
    } else if (c == '\n') {
      out += "\\n", ++i;
    } else if (size_t n = c >= 0x80 ? utf8_sequence(bytes, i) : 0) {
      out.append(bytes.substr(i, n));
      i += n;
    } else {
      hex(out, c);
      ++i;
    }
  }
  return out;
}

std::string time_of_day(std::string_view timestamp) {
  size_t t = timestamp.find('T');
  if (t == std::string_view::npos) return std::string(timestamp);
  std::string_view rest = timestamp.substr(t + 1);
  if (!rest.empty() && rest.back() == 'Z') rest.remove_suffix(1);
  return std::string(rest);
}

std::string render_watch_event(const Json& event) {
  const std::string* kind = string_field(event, "event");
  if (!kind) return {};
  const std::string* at = string_field(event, "at");
  std::string when = at ? escape_bytes(time_of_day(*at)) : std::string("-");
  if (*kind == "data") {
    const std::string* dir = string_field(event, "dir");
    const std::string* data = string_field(event, "data");
    if (!dir || !data) return {};
    const char* marker = *dir == "in" ? " < " : " > ";
    std::optional<std::string> decoded = admin::base64_decode(*data);
    if (!decoded) return {};
    const std::string& bytes = *decoded;
    std::string out;
    std::string_view rest = bytes;
    while (!rest.empty()) {
      size_t nl = rest.find('\n');
      std::string_view line = rest.substr(0, nl);
      rest.remove_prefix(nl == std::string_view::npos ? rest.size() : nl + 1);
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      out += when + marker + escape_bytes(line) + "\n";
    }
    return out;
  }
  if (*kind == "skipped") {
    // A count, as a number or a decimal string.
    auto n = event.find("bytes");
    std::string count = "?";
    if (n != event.end() && n->is_number_integer() && n->get<int64_t>() >= 0) count = n->dump();
    if (n != event.end() && n->is_string() && !n->get<std::string>().empty() &&
        n->get<std::string>().find_first_not_of("0123456789") == std::string::npos)
      count = n->get<std::string>();
    return when + " ! " + count + " bytes skipped (the watcher fell behind)\n";
  }
  if (*kind == "closed") {
    const std::string* reason = string_field(event, "reason");
    return when + " = client closed: " + (reason ? escape_bytes(*reason) : std::string("-")) + "\n";
  }
  return {};
}

}  // namespace keel::cli
