// libFuzzer: what `keel ctl attach` shows of a hub client's bytes (cli/attach_view.h), and the
// base64 of the session events (admin/base64.h). The first byte picks the framing (bits 0-1) and
// where the input is cut into pieces. Checks:
// - the view is the same whether the bytes come whole or in pieces (UTF-8 cut between reads);
// - what it shows is safe for a terminal: well-formed UTF-8, no control character but newline,
//   no C1 or bidirectional control;
// - base64: decode(encode(x)) == x, and any text that decodes is the canonical encoding of what
//   it decodes to.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "admin/base64.h"
#include "cli/attach_view.h"
#include "services/chat/framing.h"

namespace {

using keel::cli::AttachView;

std::string show(AttachView::Framing framing, std::string_view bytes, unsigned seed) {
  AttachView view(framing);
  std::string out;
  unsigned x = seed * 2654435761u + 1;
  while (!bytes.empty()) {
    x = x * 1103515245u + 12345u;
    size_t n = seed == 0 ? bytes.size() : 1 + (x >> 16) % 7;
    n = std::min(n, bytes.size());
    out += view.feed(bytes.substr(0, n));
    bytes.remove_prefix(n);
  }
  return out + view.finish();
}

void check_safe(const std::string& shown) {
  size_t i = 0;
  while (i < shown.size()) {
    auto b = static_cast<unsigned char>(shown[i]);
    if (b < 0x80) {
      if ((b < 0x20 && b != '\n') || b == 0x7f) std::abort();
      ++i;
      continue;
    }
    uint32_t cp = 0;
    size_t len = keel::chat::utf8_sequence(std::string_view(shown).substr(i), cp);
    if (len == 0 || cp <= 0x9f || keel::chat::reorders_text(cp)) std::abort();
    i += len;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const unsigned control = data[0];
  std::string_view bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
  auto framing = static_cast<AttachView::Framing>(control % 3);
  std::string whole = show(framing, bytes, 0);
  std::string pieces = show(framing, bytes, control | 1);
  if (whole != pieces) std::abort();
  check_safe(whole);

  if (keel::admin::base64_decode(keel::admin::base64_encode(bytes)) != std::string(bytes))
    std::abort();
  if (auto decoded = keel::admin::base64_decode(bytes))
    if (keel::admin::base64_encode(*decoded) != bytes) std::abort();
  return 0;
}
