// PROXY protocol headers written by hand for tests (what a load balancer would send): v1 lines
// are plain strings; these build the v2 binary blocks.
#pragma once

#include <arpa/inet.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace keel::test {

inline const std::string kProxyV2Signature{"\r\n\r\n\0\r\nQUIT\n", 12};

inline std::string be16(size_t v) {
  return {static_cast<char>((v >> 8) & 0xff), static_cast<char>(v & 0xff)};
}

// One TLV: type, 16-bit length, value.
inline std::string proxy_tlv(uint8_t type, std::string_view value) {
  return std::string(1, static_cast<char>(type)) + be16(value.size()) + std::string(value);
}

// A v2 header: signature, version 2 with command (0 LOCAL, 1 PROXY), the family/transport byte,
// the length of what follows, then body (addresses and TLVs).
inline std::string proxy_v2(uint8_t command, uint8_t family_transport, std::string_view body) {
  return kProxyV2Signature + static_cast<char>(0x20 | command) +
         static_cast<char>(family_transport) + be16(body.size()) + std::string(body);
}

inline std::string proxy_v2_tcp4(const char* src, uint16_t sport, const char* dst, uint16_t dport,
                                 std::string_view tlvs = {}) {
  char a[8];
  ::inet_pton(AF_INET, src, a);
  ::inet_pton(AF_INET, dst, a + 4);
  return proxy_v2(1, 0x11, std::string(a, 8) + be16(sport) + be16(dport) + std::string(tlvs));
}

inline std::string proxy_v2_tcp6(const char* src, uint16_t sport, const char* dst, uint16_t dport,
                                 std::string_view tlvs = {}) {
  char a[32];
  ::inet_pton(AF_INET6, src, a);
  ::inet_pton(AF_INET6, dst, a + 16);
  return proxy_v2(1, 0x21, std::string(a, 32) + be16(sport) + be16(dport) + std::string(tlvs));
}

inline std::string proxy_v2_unix(std::string_view src, std::string_view dst) {
  std::string block(216, '\0');
  std::memcpy(block.data(), src.data(), src.size());
  std::memcpy(block.data() + 108, dst.data(), dst.size());
  return proxy_v2(1, 0x31, block);
}

// What HAProxy sends on its health checks: LOCAL, UNSPEC, no addresses.
inline std::string proxy_v2_local() {
  return proxy_v2(0, 0x00, {});
}

}  // namespace keel::test
