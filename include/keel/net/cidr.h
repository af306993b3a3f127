// Cidr: an IPv4 or IPv6 address prefix ("10.0.0.0/8", "::1/128"), for allow lists such as the
// peers trusted to send a PROXY protocol header.
// Thread safety: a value type; const methods are safe from any thread.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "keel/net/endpoint.h"

namespace keel {

class Cidr {
 public:
  // "ADDRESS/BITS" or a bare ADDRESS (all bits: one host). IPv4 takes 0..32 bits, IPv6 0..128.
  // The address may have no bits set past the prefix ("10.1.0.0/8" is refused, naming
  // 10.0.0.0/8), so a typo cannot widen or narrow the range unnoticed. An IPv4-mapped IPv6
  // prefix of 96 bits or more ("::ffff:10.0.0.0/104") is the IPv4 prefix it maps.
  // Throws Error naming the text and what is wrong with it.
  static Cidr parse(std::string_view text);

  // Whether an IP endpoint's address lies in the prefix (its port is ignored). An IPv4-mapped
  // IPv6 address (::ffff:a.b.c.d, what a dual-stack socket reports) matches as the IPv4 address
  // it maps. Unix and unset endpoints match nothing.
  bool contains(const Endpoint& endpoint) const noexcept;

  // "10.0.0.0/8", "::1/128": parse(to_string()) gives back the same prefix.
  std::string to_string() const;

  bool is_ipv6() const noexcept { return family_ == AF_INET6; }
  int prefix_bits() const noexcept { return bits_; }

 private:
  int family_ = AF_INET;
  int bits_ = 0;
  std::array<uint8_t, 16> addr_{};  // IPv4 in the first 4 bytes
};

}  // namespace keel
