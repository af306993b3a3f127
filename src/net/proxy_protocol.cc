#include "keel/net/proxy_protocol.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/un.h>

#include <algorithm>
#include <cstring>

namespace keel {
namespace {

// Every decision below at byte i depends only on bytes [0, i], so a prefix of the input either
// needs more or reaches the same answer as the whole input (the fuzzer checks this).

constexpr std::string_view kV1Prefix = "PROXY ";
constexpr std::string_view kV2Signature{"\r\n\r\n\0\r\nQUIT\n", 12};
constexpr size_t kV2FixedBytes = 16;

ProxyParse need_more() {
  return {};
}

ProxyParse fail(std::string reason) {
  ProxyParse p;
  p.status = ProxyParse::Status::error;
  p.error = std::move(reason);
  return p;
}

// Up to 8 bytes, quoted and printable, for an error message ("TCP5", "\x16\x03\x01").
std::string quoted(std::string_view bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "\"";
  for (unsigned char c : bytes.substr(0, 8)) {
    if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
      out += static_cast<char>(c);
    } else {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out + (bytes.size() > 8 ? "...\"" : "\"");
}

// Error reasons depend only on the bytes that decided them, never on what follows, so a
// prefix that already fails says exactly what the whole input says.
ProxyParse not_a_header() {
  return fail("not a PROXY protocol header");
}

// ---- version 1 ----------------------------------------------------------------------------

// "0".."65535" without leading zeros.
std::optional<uint16_t> parse_v1_port(std::string_view s) {
  if (s.empty() || s.size() > 5 || (s.size() > 1 && s[0] == '0')) return std::nullopt;
  uint32_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<uint32_t>(c - '0');
  }
  if (v > 65535) return std::nullopt;
  return static_cast<uint16_t>(v);
}

// Exactly four decimal numbers 0..255 without leading zeros, separated by single dots.
bool parse_v1_ipv4(std::string_view s, in_addr& out) {
  uint8_t parts[4];
  for (int i = 0; i < 4; ++i) {
    size_t end = i < 3 ? s.find('.') : s.size();
    if (end == std::string_view::npos) return false;
    std::string_view num = s.substr(0, end);
    if (num.empty() || num.size() > 3 || (num.size() > 1 && num[0] == '0')) return false;
    unsigned v = 0;
    for (char c : num) {
      if (c < '0' || c > '9') return false;
      v = v * 10 + static_cast<unsigned>(c - '0');
    }
    if (v > 255) return false;
    parts[i] = static_cast<uint8_t>(v);
    s.remove_prefix(i < 3 ? end + 1 : end);
  }
  std::memcpy(&out.s_addr, parts, 4);
  return true;
}

bool parse_v1_ipv6(std::string_view s, in6_addr& out) {
  if (s.empty() || s.size() > INET6_ADDRSTRLEN - 1) return false;
  char text[INET6_ADDRSTRLEN] = {};
  std::memcpy(text, s.data(), s.size());
  return ::inet_pton(AF_INET6, text, &out) == 1;
}

Endpoint ipv4_endpoint(in_addr addr, uint16_t port) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr = addr;
  sa.sin_port = htons(port);
  return Endpoint::from_sockaddr(reinterpret_cast<const sockaddr*>(&sa), sizeof sa);
}

Endpoint ipv6_endpoint(const in6_addr& addr, uint16_t port) {
  sockaddr_in6 sa{};
  sa.sin6_family = AF_INET6;
  sa.sin6_addr = addr;
  sa.sin6_port = htons(port);
  return Endpoint::from_sockaddr(reinterpret_cast<const sockaddr*>(&sa), sizeof sa);
}

// line: the text between "PROXY " and the CRLF.
ProxyParse parse_v1_fields(std::string_view line, size_t length) {
  ProxyParse p;
  p.status = ProxyParse::Status::done;
  p.header.version = 1;
  p.header.command = ProxyHeader::Command::proxy;
  p.header.length = length;
  if (line == "UNKNOWN" || line.starts_with("UNKNOWN ")) return p;  // the rest is ignored

  std::string_view fields[5];
  size_t n = 0;
  std::string_view rest = line;
  for (;;) {
    size_t space = rest.find(' ');
    if (n == 5) return fail("v1 line has too many fields");
    fields[n++] = rest.substr(0, space);
    if (space == std::string_view::npos) break;
    rest.remove_prefix(space + 1);
  }
  std::string_view proto = fields[0];
  if (proto != "TCP4" && proto != "TCP6")
    return fail("v1 protocol " + quoted(proto) + " is not TCP4, TCP6 or UNKNOWN");
  if (n != 5) return fail("v1 " + std::string(proto) + " line needs 4 fields after the protocol");
  for (size_t i = 1; i < n; ++i)
    if (fields[i].empty()) return fail("v1 fields must be separated by exactly one space");
  auto sport = parse_v1_port(fields[3]);
  auto dport = parse_v1_port(fields[4]);
  if (!sport || !dport) return fail("bad port in v1 line (decimal 0..65535, no leading zeros)");
  if (proto == "TCP4") {
    in_addr src{}, dst{};
    if (!parse_v1_ipv4(fields[1], src) || !parse_v1_ipv4(fields[2], dst))
      return fail("bad address in v1 TCP4 line (dotted quad, no leading zeros)");
    p.header.family = ProxyHeader::Family::tcp4;
    p.header.source = ipv4_endpoint(src, *sport);
    p.header.destination = ipv4_endpoint(dst, *dport);
  } else {
    in6_addr src{}, dst{};
    if (!parse_v1_ipv6(fields[1], src) || !parse_v1_ipv6(fields[2], dst))
      return fail("bad address in v1 TCP6 line");
    p.header.family = ProxyHeader::Family::tcp6;
    p.header.source = ipv6_endpoint(src, *sport);
    p.header.destination = ipv6_endpoint(dst, *dport);
  }
  return p;
}

ProxyParse parse_v1(std::string_view bytes) {
  size_t limit = std::min(bytes.size(), kProxyV1MaxBytes);
  for (size_t i = 0; i < limit; ++i) {
    auto c = static_cast<unsigned char>(bytes[i]);
    if (i < kV1Prefix.size()) {
      if (c != static_cast<unsigned char>(kV1Prefix[i])) return not_a_header();
      continue;
    }
    if (c == '\r') continue;  // judged by the byte after it
    bool after_cr = bytes[i - 1] == '\r';
    if (c == '\n') {
      if (!after_cr) return fail("v1 line ends with LF without CR");
      return parse_v1_fields(bytes.substr(kV1Prefix.size(), i - 1 - kV1Prefix.size()), i + 1);
    }
    if (after_cr) return fail("v1 line has a CR not followed by LF");
    if (c < 0x20 || c > 0x7e) return fail("v1 line has a byte that is not printable ASCII");
  }
  if (bytes.size() >= kProxyV1MaxBytes)
    return fail("v1 line over " + std::to_string(kProxyV1MaxBytes) + " bytes without CRLF");
  return need_more();
}

// ---- version 2 ----------------------------------------------------------------------------

uint16_t read_be16(const unsigned char* p) {
  return static_cast<uint16_t>(p[0] << 8 | p[1]);
}

// The address block a family needs before its TLVs (STREAM or DGRAM transport).
size_t v2_address_bytes(unsigned family) {
  switch (family) {
    case 1: return 12;   // two IPv4 addresses, two ports
    case 2: return 36;   // two IPv6 addresses, two ports
    case 3: return 216;  // two 108-byte Unix paths
    default: return 0;
  }
}

std::optional<Endpoint> unix_endpoint(const unsigned char* path108) {
  size_t n = strnlen(reinterpret_cast<const char*>(path108), 108);
  if (n == 0) return std::nullopt;  // unnamed (or abstract) socket: nothing to show
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  std::memcpy(sa.sun_path, path108, n);
  size_t len = std::min(offsetof(sockaddr_un, sun_path) + n + 1, sizeof sa);
  return Endpoint::from_sockaddr(reinterpret_cast<const sockaddr*>(&sa),
                                 static_cast<socklen_t>(len));
}

ProxyParse parse_v2(std::string_view bytes) {
  size_t sig = std::min(bytes.size(), kV2Signature.size());
  if (bytes.substr(0, sig) != kV2Signature.substr(0, sig)) return not_a_header();
  const auto* b = reinterpret_cast<const unsigned char*>(bytes.data());
  if (bytes.size() > 12) {
    if ((b[12] >> 4) != 2) return fail("v2 version " + std::to_string(b[12] >> 4) + " is not 2");
    if ((b[12] & 15) > 1)
      return fail("v2 command " + std::to_string(b[12] & 15) + " is neither LOCAL nor PROXY");
  }
  if (bytes.size() > 13) {
    if ((b[13] >> 4) > 3)
      return fail("unsupported family " + std::to_string(b[13] >> 4) + " in v2");
    if ((b[13] & 15) > 2)
      return fail("unsupported transport " + std::to_string(b[13] & 15) + " in v2");
  }
  if (bytes.size() < kV2FixedBytes) return need_more();

  const unsigned family = b[13] >> 4, transport = b[13] & 15;
  const bool local = (b[12] & 15) == 0;
  const size_t body = read_be16(b + 14);
  if (kV2FixedBytes + body > kProxyV2MaxBytes)
    return fail("v2 length " + std::to_string(body) + " over limit (header at most " +
                std::to_string(kProxyV2MaxBytes) + " bytes)");
  // LOCAL ignores the family, and an UNSPEC family or transport means the block is not to be
  // used: then the whole block is skipped unread. Otherwise it must hold the addresses, and
  // what follows them must be well-formed TLVs.
  const bool skip_block = local || family == 0 || transport == 0;
  const size_t address_bytes = skip_block ? 0 : v2_address_bytes(family);
  if (body < address_bytes)
    return fail("v2 length " + std::to_string(body) + " too short for its address family (" +
                std::to_string(address_bytes) + " bytes)");
  if (bytes.size() < kV2FixedBytes + body) return need_more();

  // TLVs: type, 16-bit length, value; they must fill the rest of the header exactly.
  const unsigned char* tlv = b + kV2FixedBytes + address_bytes;
  const unsigned char* end = b + kV2FixedBytes + body;
  while (!skip_block && tlv != end) {
    if (end - tlv < 3) return fail("v2 TLV truncated (under 3 bytes left)");
    size_t len = read_be16(tlv + 1);
    if (static_cast<size_t>(end - tlv - 3) < len) return fail("v2 TLV runs past the header");
    tlv += 3 + len;
  }

  ProxyParse p;
  p.status = ProxyParse::Status::done;
  p.header.version = 2;
  p.header.command = local ? ProxyHeader::Command::local : ProxyHeader::Command::proxy;
  p.header.length = kV2FixedBytes + body;
  // Only a STREAM connection is one keel can stand in for; DGRAM falls back to the socket's
  // peer, as the spec allows for combinations a receiver does not implement.
  if (skip_block || transport != 1) return p;
  const unsigned char* a = b + kV2FixedBytes;
  switch (family) {
    case 1: {
      in_addr src{}, dst{};
      std::memcpy(&src, a, 4);
      std::memcpy(&dst, a + 4, 4);
      p.header.family = ProxyHeader::Family::tcp4;
      p.header.source = ipv4_endpoint(src, read_be16(a + 8));
      p.header.destination = ipv4_endpoint(dst, read_be16(a + 10));
      break;
    }
    case 2: {
      in6_addr src{}, dst{};
      std::memcpy(&src, a, 16);
      std::memcpy(&dst, a + 16, 16);
      p.header.family = ProxyHeader::Family::tcp6;
      p.header.source = ipv6_endpoint(src, read_be16(a + 32));
      p.header.destination = ipv6_endpoint(dst, read_be16(a + 34));
      break;
    }
    case 3:
      p.header.family = ProxyHeader::Family::unix_stream;
      p.header.source = unix_endpoint(a);
      p.header.destination = unix_endpoint(a + 108);
      break;
    default: break;  // UNSPEC: no addresses
  }
  return p;
}

}  // namespace

ProxyParse parse_proxy_header(std::string_view bytes) {
  if (bytes.empty()) return need_more();
  if (bytes[0] == kV2Signature[0]) return parse_v2(bytes);
  if (bytes[0] == kV1Prefix[0]) return parse_v1(bytes);
  return not_a_header();
}

const char* to_string(ProxyHeader::Family family) noexcept {
  switch (family) {
    case ProxyHeader::Family::unknown: return "UNKNOWN";
    case ProxyHeader::Family::tcp4: return "TCP4";
    case ProxyHeader::Family::tcp6: return "TCP6";
    case ProxyHeader::Family::unix_stream: return "UNIX";
  }
  return "?";
}

const char* to_string(ProxyHeader::Command command) noexcept {
  return command == ProxyHeader::Command::local ? "LOCAL" : "PROXY";
}

}  // namespace keel
