// libFuzzer: Endpoint::parse on arbitrary text (TCP, unix: and udp: forms): either an Error or an
// endpoint whose printed form parses back to the same endpoint.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "keel/error.h"
#include "keel/net/endpoint.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  // Host names would go to the resolver: keep to literal addresses and unix paths.
  std::string_view address = text.starts_with("udp:") ? text.substr(4) : text;
  if (address.find_first_of("abcdefghijklmnopqrstvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") !=
          std::string_view::npos &&
      !address.starts_with("unix:"))
    return 0;
  try {
    keel::Endpoint ep = keel::Endpoint::parse(text);
    if (!(keel::Endpoint::parse(ep.to_string()) == ep)) std::abort();
  } catch (const keel::Error&) {
  }
  return 0;
}
