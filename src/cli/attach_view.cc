#include "cli/attach_view.h"

#include "services/chat/framing.h"

namespace keel::cli {
namespace {

constexpr char kHex[] = "0123456789abcdef";

void hex_byte(unsigned char b, std::string& out) {
  out += "\\x";
  out += kHex[b >> 4];
  out += kHex[b & 15];
}

// The length a UTF-8 lead byte announces, or 0 for a byte that leads nothing.
size_t announced_length(unsigned char b) {
  if (b >= 0xc2 && b <= 0xdf) return 2;
  if (b >= 0xe0 && b <= 0xef) return 3;
  if (b >= 0xf0 && b <= 0xf4) return 4;
  return 0;
}

// Whether s (shorter than its lead announces) may still become a well-formed sequence.
bool may_complete(std::string_view s) {
  size_t want = announced_length(static_cast<unsigned char>(s[0]));
  if (want == 0 || s.size() >= want) return false;
  for (size_t i = 1; i < s.size(); ++i) {
    auto b = static_cast<unsigned char>(s[i]);
    if (b < 0x80 || b > 0xbf) return false;
  }
  return true;
}

// Appends the printable form of s to out. With cut, a sequence cut short at the end of s is
// left in *cut instead of being escaped.
void escape(std::string_view s, bool keep_newlines, std::string& out, std::string* cut) {
  size_t i = 0;
  while (i < s.size()) {
    auto b = static_cast<unsigned char>(s[i]);
    if (b < 0x80) {
      if (b == '\n' && keep_newlines)
        out += '\n';
      else if (b == '\n')
        out += "\\n";
      else if (b == '\t')
        out += "\\t";
      else if (b == '\r')
        out += "\\r";
      else if (b == '\\')
        out += "\\\\";
      else if (b < 0x20 || b == 0x7f)
        hex_byte(b, out);
      else
        out += static_cast<char>(b);
      ++i;
      continue;
    }
    uint32_t cp = 0;
    size_t len = chat::utf8_sequence(s.substr(i), cp);
    if (len == 0) {
      if (cut && may_complete(s.substr(i))) {
        cut->assign(s.substr(i));
        return;
      }
      hex_byte(b, out);
      ++i;
      continue;
    }
    if (cp <= 0x9f) {  // C1 controls: each byte escaped
      for (size_t k = 0; k < len; ++k) hex_byte(static_cast<unsigned char>(s[i + k]), out);
    } else if (chat::reorders_text(cp)) {
      out += "\\u";
      for (int shift = 12; shift >= 0; shift -= 4) out += kHex[(cp >> shift) & 15];
    } else {
      out.append(s.substr(i, len));
    }
    i += len;
  }
}

}  // namespace

std::string escape_for_terminal(std::string_view bytes, bool keep_newlines) {
  std::string out;
  escape(bytes, keep_newlines, out, nullptr);
  return out;
}

void AttachView::text(std::string_view bytes, bool keep_newlines, std::string& out) {
  if (bytes.empty()) return;
  std::string joined;
  if (!cut_.empty()) {  // the rest of a cut sequence comes first
    joined = std::move(cut_);
    cut_.clear();
    joined.append(bytes);
    bytes = joined;
  }
  size_t before = out.size();
  escape(bytes, keep_newlines, out, &cut_);
  if (out.size() > before) at_line_start_ = out.back() == '\n';
}

std::string AttachView::feed(std::string_view bytes) {
  std::string out;
  if (framing_ != Framing::length) {
    text(bytes, true, out);
    return out;
  }
  while (!bytes.empty()) {
    if (!in_frame_) {
      size_t take = std::min<size_t>(4 - header_.size(), bytes.size());
      header_.append(bytes.substr(0, take));
      bytes.remove_prefix(take);
      if (header_.size() < 4) break;
      auto at = [&](size_t k) {
        return static_cast<uint64_t>(static_cast<unsigned char>(header_[k]));
      };
      frame_left_ = (at(0) << 24) | (at(1) << 16) | (at(2) << 8) | at(3);
      header_.clear();
      in_frame_ = true;
    }
    size_t take = static_cast<size_t>(std::min<uint64_t>(frame_left_, bytes.size()));
    text(bytes.substr(0, take), false, out);
    bytes.remove_prefix(take);
    frame_left_ -= take;
    if (frame_left_ == 0) {  // one frame, one line
      if (!cut_.empty()) {
        escape(cut_, false, out, nullptr);
        cut_.clear();
      }
      out += '\n';
      at_line_start_ = true;
      in_frame_ = false;
    }
  }
  return out;
}

std::string AttachView::finish() {
  std::string out;
  if (!cut_.empty()) {
    escape(cut_, framing_ != Framing::length, out, nullptr);
    cut_.clear();
    at_line_start_ = false;
  }
  if (!header_.empty()) {  // a cut header: show its bytes
    escape(header_, false, out, nullptr);
    header_.clear();
    at_line_start_ = false;
  }
  if (!out.empty()) at_line_start_ = out.back() == '\n';
  if (!at_line_start_) {
    out += '\n';
    at_line_start_ = true;
  }
  return out;
}

}  // namespace keel::cli
