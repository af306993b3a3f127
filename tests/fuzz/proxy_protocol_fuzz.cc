// libFuzzer: parse_proxy_header on arbitrary bytes, whole and fed in pieces as a socket might
// deliver them. The first byte chooses where the pieces are cut. Checks: a finished header
// never claims more bytes than it was given or than the limits allow; every prefix before the
// answer needs more; the first answer is the one-shot answer (status, reason, length, peer).
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "keel/net/proxy_protocol.h"

namespace {

bool same(const keel::ProxyParse& a, const keel::ProxyParse& b) {
  if (a.status != b.status || a.error != b.error) return false;
  if (a.status != keel::ProxyParse::Status::done) return true;
  const keel::ProxyHeader &x = a.header, &y = b.header;
  return x.version == y.version && x.command == y.command && x.family == y.family &&
         x.length == y.length && x.source.has_value() == y.source.has_value() &&
         (!x.source || *x.source == *y.source) &&
         x.destination.has_value() == y.destination.has_value() &&
         (!x.destination || *x.destination == *y.destination);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const unsigned step_seed = data[0];
  std::string_view bytes(reinterpret_cast<const char*>(data) + 1, size - 1);

  keel::ProxyParse whole = keel::parse_proxy_header(bytes);
  if (whole.status == keel::ProxyParse::Status::done) {
    const size_t limit =
        whole.header.version == 1 ? keel::kProxyV1MaxBytes : keel::kProxyV2MaxBytes;
    if (whole.header.length == 0 || whole.header.length > bytes.size() ||
        whole.header.length > limit)
      std::abort();
    // The header alone gives the same answer as the header with anything after it.
    if (!same(keel::parse_proxy_header(bytes.substr(0, whole.header.length)), whole)) std::abort();
  }
  if (whole.status == keel::ProxyParse::Status::error && whole.error.empty()) std::abort();

  // Growing prefixes, cut at pseudo-random points (1..16 bytes apart).
  unsigned x = step_seed * 2654435761u + 1;
  size_t n = 0;
  for (;;) {
    keel::ProxyParse part = keel::parse_proxy_header(bytes.substr(0, n));
    if (part.status != keel::ProxyParse::Status::need_more) {
      if (!same(part, whole)) std::abort();
      break;
    }
    if (n == bytes.size()) {
      if (whole.status != keel::ProxyParse::Status::need_more) std::abort();
      break;
    }
    x = x * 1103515245u + 12345u;
    n = std::min(bytes.size(), n + 1 + ((x >> 16) % 16));
  }
  return 0;
}
