#include "services/chat/framing.h"

#include <cstdint>

namespace keel::chat {

DecodeStatus decode(Framing framing, Buffer& in, size_t max_bytes, std::string& out) {
  if (framing == Framing::lines) {
    size_t eol = in.find_eol();
    if (eol == std::string_view::npos) {
      // Without a newline, more than max_bytes (+ room for "\r") can only be an over-long line.
      return in.readable_bytes() > max_bytes + 1 ? DecodeStatus::too_long : DecodeStatus::need_more;
    }
    size_t len = eol;
    if (len > 0 && in.peek()[len - 1] == '\r') --len;
    if (len > max_bytes) return DecodeStatus::too_long;
    out.assign(in.peek(), len);
    in.consume(eol + 1);
    return DecodeStatus::message;
  }
  if (in.readable_bytes() < 4) return DecodeStatus::need_more;
  const auto* p = reinterpret_cast<const unsigned char*>(in.peek());
  uint32_t len = (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
  if (len > max_bytes) return DecodeStatus::too_long;
  if (in.readable_bytes() < 4 + size_t{len}) return DecodeStatus::need_more;
  out.assign(in.peek() + 4, len);
  in.consume(4 + size_t{len});
  return DecodeStatus::message;
}

std::string encode(Framing framing, std::string_view text) {
  std::string s;
  if (framing == Framing::lines) {
    s.reserve(text.size() + 1);
    s.append(text);
    s.push_back('\n');
    return s;
  }
  uint32_t len = static_cast<uint32_t>(text.size());
  s.reserve(text.size() + 4);
  s.push_back(static_cast<char>(len >> 24));
  s.push_back(static_cast<char>(len >> 16));
  s.push_back(static_cast<char>(len >> 8));
  s.push_back(static_cast<char>(len));
  s.append(text);
  return s;
}

size_t utf8_sequence(std::string_view s, uint32_t& code_point) {
  if (s.empty()) return 0;
  auto byte = [&](size_t i) { return static_cast<unsigned char>(s[i]); };
  const unsigned char b0 = byte(0);
  size_t len;
  uint32_t cp;
  unsigned char lo = 0x80, hi = 0xbf;  // the allowed range of the second byte
  if (b0 >= 0xc2 && b0 <= 0xdf) {
    len = 2, cp = b0 & 0x1f;
  } else if (b0 >= 0xe0 && b0 <= 0xef) {
    len = 3, cp = b0 & 0x0f;
    if (b0 == 0xe0) lo = 0xa0;  // overlong
    if (b0 == 0xed) hi = 0x9f;  // surrogates
  } else if (b0 >= 0xf0 && b0 <= 0xf4) {
    len = 4, cp = b0 & 0x07;
    if (b0 == 0xf0) lo = 0x90;  // overlong
    if (b0 == 0xf4) hi = 0x8f;  // above U+10FFFF
  } else {
    return 0;  // a continuation byte, C0/C1 overlong lead bytes (0xc0, 0xc1), or 0xf5..0xff
  }
  if (s.size() < len) return 0;
  for (size_t i = 1; i < len; ++i) {
    unsigned char b = byte(i);
    if (b < (i == 1 ? lo : 0x80) || b > (i == 1 ? hi : 0xbf)) return 0;
    cp = (cp << 6) | (b & 0x3f);
  }
  code_point = cp;
  return len;
}

bool reorders_text(uint32_t cp) {
  return (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069);
}

std::string sanitize(std::string_view text) {
  static constexpr std::string_view kReplacement = "\xef\xbf\xbd";  // U+FFFD
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    auto u = static_cast<unsigned char>(text[i]);
    if (u < 0x80) {
      out += (u < 0x20 && u != '\t') || u == 0x7f ? '?' : static_cast<char>(u);
      ++i;
      continue;
    }
    uint32_t cp = 0;
    size_t len = utf8_sequence(text.substr(i), cp);
    if (len == 0) {
      out += kReplacement;
      ++i;
      continue;
    }
    if (cp <= 0x9f || reorders_text(cp))  // C1 controls (U+0080..U+009F), bidi controls
      out += '?';
    else
      out.append(text.substr(i, len));
    i += len;
  }
  return out;
}

}  // namespace keel::chat
