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

std::string sanitize(std::string_view text) {
  std::string s(text);
  for (char& c : s) {
    auto u = static_cast<unsigned char>(c);
    if ((u < 0x20 && c != '\t') || u == 0x7f) c = '?';
  }
  return s;
}

}  // namespace keel::chat
