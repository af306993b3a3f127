// The PROXY protocol header (HAProxy's proxy-protocol.txt) a load balancer puts in front of a
// connection's bytes to say who the client really is: version 1 is one text line
// ("PROXY TCP4 203.0.113.7 192.0.2.1 4242 7000\r\n"), version 2 a binary block that starts with
// a 12-byte signature. parse_proxy_header() recognises either from the first bytes.
//
// The parser is pure and bounded: it looks only at the bytes it is given (everything received
// so far), never reads past the header, and answers need_more, error (with a reason) or done
// (with the header's length, so the caller knows where the connection's own bytes begin).
// Feeding it a growing prefix gives the same final answer as feeding it everything at once.
//
// What it accepts:
//   v1: "PROXY TCP4|TCP6 SRC DST SPORT DPORT\r\n" with canonical addresses (no leading zeros in
//       IPv4 numbers or ports), or "PROXY UNKNOWN...\r\n"; at most 107 bytes with the CRLF.
//   v2: version 2, command LOCAL or PROXY; family UNSPEC, INET, INET6 or UNIX; transport UNSPEC,
//       STREAM or DGRAM; header at most kProxyV2MaxBytes in total. When the block is to be used
//       (PROXY, a family and a transport) it must hold the family's addresses, and the TLVs
//       after them are checked for shape and skipped; LOCAL or UNSPEC blocks are skipped unread.
// The source and destination are set only when the header names a connection keel can use as
// a peer: PROXY command, STREAM transport (always, for v1), TCP over IPv4/IPv6, or UNIX with a
// non-empty path. Otherwise (LOCAL, UNKNOWN, UNSPEC, DGRAM, unnamed Unix socket) they are empty
// and the connection keeps the socket's own peer, as the spec asks.
// Thread safety: free functions on values; safe from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "keel/net/endpoint.h"

namespace keel {

// Longest v1 line, CRLF included (the spec's worst case, "PROXY UNKNOWN" with two IPv6
// addresses and ports).
inline constexpr size_t kProxyV1MaxBytes = 107;
// Longest v2 header keel accepts, the 16 fixed bytes included: room for the addresses and the
// TLVs HAProxy sends (unique id, ALPN, authority, SSL details), far below the 64 KiB the length
// field could name.
inline constexpr size_t kProxyV2MaxBytes = 4096;
// The most bytes a header can take: the stage never needs more than this from the socket.
inline constexpr size_t kProxyMaxHeaderBytes = kProxyV2MaxBytes;

struct ProxyHeader {
  enum class Command : uint8_t {
    local,  // the proxy's own connection (health check): keep the socket's peer
    proxy,  // relayed for a client: the source address is the client's
  };
  enum class Family : uint8_t {
    unknown,  // v1 UNKNOWN, v2 UNSPEC (or a DGRAM/UNSPEC transport): no usable address
    tcp4,
    tcp6,
    unix_stream,
  };

  int version = 0;  // 1 or 2
  Command command = Command::proxy;
  Family family = Family::unknown;
  size_t length = 0;  // bytes the header takes on the wire; the connection's data follows
  std::optional<Endpoint> source;       // the client, when the header names one (see above)
  std::optional<Endpoint> destination;  // the address the client connected to
};

struct ProxyParse {
  enum class Status : uint8_t { need_more, error, done };
  Status status = Status::need_more;
  ProxyHeader header;  // when done
  std::string error;   // when error: why, e.g. "v1 line over 107 bytes"
};

// Parses the PROXY header at the start of bytes (all the bytes received so far).
ProxyParse parse_proxy_header(std::string_view bytes);

const char* to_string(ProxyHeader::Family family) noexcept;    // "TCP4", "TCP6", "UNIX", "UNKNOWN"
const char* to_string(ProxyHeader::Command command) noexcept;  // "LOCAL", "PROXY"

}  // namespace keel
