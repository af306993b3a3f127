// libFuzzer: Endpoint::parse on arbitrary text (TCP, unix: and udp: forms). Checks: either an
// Error, or an endpoint whose printed form parses back to the same endpoint, of the transport
// the text asked for, from text that holds no NUL byte (a C-string call must not see less than
// was written: "127.0.0.1\0junk:80" is not 127.0.0.1:80).
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "keel/error.h"
#include "keel/net/endpoint.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  // Host names would go to the resolver: keep to literal addresses and unix paths. Hex letters
  // are for IPv6 addresses, so only inside brackets.
  std::string_view address = text.starts_with("udp:") ? text.substr(4) : text;
  if (!address.starts_with("unix:")) {
    if (address.find_first_of("ghijklmnopqrstuvwxyzGHIJKLMNOPQRSTUVWXYZ-_") !=
        std::string_view::npos)
      return 0;
    if (!address.starts_with("[") &&
        address.find_first_of("abcdefABCDEF") != std::string_view::npos)
      return 0;
  }
  try {
    keel::Endpoint ep = keel::Endpoint::parse(text);
    if (!(keel::Endpoint::parse(ep.to_string()) == ep)) std::abort();
    if (ep.is_udp() != text.starts_with("udp:")) std::abort();
    if (ep.is_unix() != text.starts_with("unix:")) std::abort();
    if (text.find('\0') != std::string_view::npos) std::abort();
  } catch (const keel::Error& e) {
    if (std::string_view(e.what()).empty()) std::abort();
  }
  return 0;
}
