// libFuzzer: Cidr::parse (--proxy-allow, and the config file's allow lists) on arbitrary text.
// Checks: it either throws an Error naming the text, or gives a prefix that
// - was written in address characters only (a NUL or other byte cannot hide behind a valid
//   prefix: "10.0.0.0/8\0junk" is not 10.0.0.0/8),
// - prints as text that parses back to the same prefix,
// - contains its own network address and every address that differs from it past the prefix,
//   and no address that differs from it within the prefix,
// - contains nothing that is not an IP address.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/un.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include "keel/error.h"
#include "keel/net/cidr.h"
#include "keel/net/endpoint.h"

namespace {

// An endpoint for the 4 or 16 address bytes of `family` (port 1).
keel::Endpoint endpoint_of(int family, const uint8_t* bytes) {
  if (family == AF_INET) {
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_port = htons(1);
    std::memcpy(&sin.sin_addr, bytes, 4);
    return keel::Endpoint::from_sockaddr(reinterpret_cast<const sockaddr*>(&sin), sizeof sin);
  }
  sockaddr_in6 sin6{};
  sin6.sin6_family = AF_INET6;
  sin6.sin6_port = htons(1);
  std::memcpy(&sin6.sin6_addr, bytes, 16);
  return keel::Endpoint::from_sockaddr(reinterpret_cast<const sockaddr*>(&sin6), sizeof sin6);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  keel::Cidr cidr;
  try {
    cidr = keel::Cidr::parse(text);
  } catch (const keel::Error& e) {
    if (!std::string_view(e.what()).starts_with("CIDR '")) std::abort();
    return 0;
  }
  if (text.find_first_not_of("0123456789abcdefABCDEF.:/") != std::string_view::npos) std::abort();

  const int family = cidr.is_ipv6() ? AF_INET6 : AF_INET;
  const int max_bits = cidr.is_ipv6() ? 128 : 32;
  const int bits = cidr.prefix_bits();
  if (bits < 0 || bits > max_bits) std::abort();

  const std::string printed = cidr.to_string();
  keel::Cidr again = keel::Cidr::parse(printed);  // must not throw
  if (again.to_string() != printed || again.is_ipv6() != cidr.is_ipv6() ||
      again.prefix_bits() != bits)
    std::abort();

  // The network address, then the same with one bit flipped (chosen by the input's length).
  uint8_t network[16] = {};
  std::string address = printed.substr(0, printed.rfind('/'));
  if (::inet_pton(family, address.c_str(), network) != 1) std::abort();
  if (!cidr.contains(endpoint_of(family, network))) std::abort();
  const int bit = static_cast<int>(size % static_cast<size_t>(max_bits));
  uint8_t flipped[16];
  std::memcpy(flipped, network, sizeof flipped);
  flipped[bit / 8] ^= static_cast<uint8_t>(0x80 >> (bit % 8));
  // (An IPv4-mapped address matches as IPv4, so never an IPv6 prefix: cidr.h.)
  const uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  const bool mapped = family == AF_INET6 && std::memcmp(flipped, kMapped, 12) == 0;
  if (cidr.contains(endpoint_of(family, flipped)) != (bit >= bits && !mapped)) std::abort();

  // An IPv4 prefix holds the IPv4-mapped IPv6 form of its addresses too (dual-stack peers).
  if (family == AF_INET) {
    uint8_t as_v6[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    std::memcpy(as_v6 + 12, network, 4);
    if (!cidr.contains(endpoint_of(AF_INET6, as_v6))) std::abort();
  }
  sockaddr_un sun{};
  sun.sun_family = AF_UNIX;
  std::strcpy(sun.sun_path, "/x");
  if (cidr.contains(
          keel::Endpoint::from_sockaddr(reinterpret_cast<const sockaddr*>(&sun), sizeof sun)))
    std::abort();
  return 0;
}
