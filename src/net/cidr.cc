#include "keel/net/cidr.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <charconv>
#include <cstring>

#include "keel/error.h"

namespace keel {
namespace {

constexpr uint8_t kMappedPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

// The text as an error message shows it: a NUL byte would end the message there.
std::string shown(std::string_view text) {
  std::string out;
  for (char c : text) out += c == '\0' ? std::string_view("\\0") : std::string_view(&c, 1);
  return out;
}

[[noreturn]] void bad(std::string_view text, const std::string& why) {
  throw Error("CIDR '" + shown(text) + "': " + why);
}

bool is_mapped_v4(const uint8_t* a16) {
  return std::memcmp(a16, kMappedPrefix, 12) == 0;
}

// Whether the first bits of a and b agree.
bool same_prefix(const uint8_t* a, const uint8_t* b, int bits) {
  int whole = bits / 8, rest = bits % 8;
  if (std::memcmp(a, b, static_cast<size_t>(whole)) != 0) return false;
  if (rest == 0) return true;
  auto mask = static_cast<uint8_t>(0xff << (8 - rest));
  return (a[whole] & mask) == (b[whole] & mask);
}

// Whether any bit from `bits` on is set in the first `bytes` bytes of a.
bool host_bits_set(const uint8_t* a, int bits, int bytes) {
  for (int i = 0; i < bytes; ++i) {
    int keep = std::max(0, std::min(8, bits - i * 8));
    auto host = static_cast<uint8_t>(keep == 8 ? 0 : 0xff >> keep);
    if (a[i] & host) return true;
  }
  return false;
}

}  // namespace

Cidr Cidr::parse(std::string_view text) {
  size_t slash = text.find('/');
  std::string address(text.substr(0, slash));
  // inet_pton reads a C string: a NUL would hide what follows it ("10.0.0.0\0junk/8").
  if (address.find('\0') != std::string::npos) bad(text, "NUL byte in the address");
  Cidr c;
  if (::inet_pton(AF_INET, address.c_str(), c.addr_.data()) == 1) {
    c.family_ = AF_INET;
  } else if (::inet_pton(AF_INET6, address.c_str(), c.addr_.data()) == 1) {
    c.family_ = AF_INET6;
  } else {
    bad(text, "'" + address + "' is not an IPv4 or IPv6 address");
  }
  const int max_bits = c.family_ == AF_INET ? 32 : 128;
  c.bits_ = max_bits;
  if (slash != std::string_view::npos) {
    std::string_view digits = text.substr(slash + 1);
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), c.bits_);
    // Digits only: from_chars reads "-0" as 0.
    if (digits.empty() || digits.find_first_not_of("0123456789") != std::string_view::npos ||
        ec != std::errc() || end != digits.data() + digits.size() || c.bits_ > max_bits)
      bad(text, "prefix length must be a number from 0 to " + std::to_string(max_bits));
  }
  if (host_bits_set(c.addr_.data(), c.bits_, max_bits / 8)) {
    Cidr fixed = c;
    for (int i = 0; i < max_bits / 8; ++i) {
      int keep = std::max(0, std::min(8, c.bits_ - i * 8));
      fixed.addr_[i] &= static_cast<uint8_t>(keep == 0 ? 0 : 0xff << (8 - keep));
    }
    bad(text, "address has bits set past the prefix (did you mean " + fixed.to_string() + "?)");
  }
  if (c.family_ == AF_INET6 && c.bits_ >= 96 && is_mapped_v4(c.addr_.data())) {
    Cidr v4;
    v4.family_ = AF_INET;
    v4.bits_ = c.bits_ - 96;
    std::memcpy(v4.addr_.data(), c.addr_.data() + 12, 4);
    return v4;
  }
  return c;
}

bool Cidr::contains(const Endpoint& endpoint) const noexcept {
  const sockaddr* sa = endpoint.sockaddr_ptr();
  const uint8_t* addr = nullptr;
  int family = sa->sa_family;
  if (family == AF_INET) {
    addr = reinterpret_cast<const uint8_t*>(&reinterpret_cast<const sockaddr_in*>(sa)->sin_addr);
  } else if (family == AF_INET6) {
    addr = reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr.s6_addr;
    if (is_mapped_v4(addr)) {
      family = AF_INET;
      addr += 12;
    }
  }
  if (!addr || family != family_) return false;
  return same_prefix(addr, addr_.data(), bits_);
}

std::string Cidr::to_string() const {
  char buf[INET6_ADDRSTRLEN] = {};
  ::inet_ntop(family_, addr_.data(), buf, sizeof buf);
  return std::string(buf) + "/" + std::to_string(bits_);
}

}  // namespace keel
