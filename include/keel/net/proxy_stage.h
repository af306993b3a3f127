// The PROXY protocol as a pre-open stage of a connection's Stream: the connection opens only
// once a valid header (v1 or v2, see proxy_protocol.h) has arrived, and the client address in it
// becomes the connection's peer everywhere (on_open, logs, keel ctl list, send by address).
//
// The stage takes exactly the header's bytes off the socket and nothing after them, so what
// follows (TLS records, the client's first request) is read by the next stream or the
// connection itself. It peeks at what has arrived, and when the header is still incomplete it
// consumes those bytes (they are all header) and keeps them, so a header split across reads
// works and a level-triggered loop never spins on unread bytes.
//
// A connection is closed before its service hears of it (Stream::Step::failed, the reason in
// error_detail(), StreamOptions::on_open_failed called) when its socket peer is not in the
// policy's allow list, when the bytes are not a valid header, or when the peer closes first;
// a header that is too slow is closed by StreamOptions::open_timeout.
// Thread safety: ProxyPolicy is immutable once shared (any thread); a stage belongs to its
// connection's thread.
#pragma once

#include <memory>
#include <vector>

#include "keel/net/cidr.h"
#include "keel/net/endpoint.h"
#include "keel/net/stream.h"

namespace keel {

struct ProxyPolicy {
  // The socket peers (the load balancers) that may send a header; empty: any peer. Checked
  // before a byte is read. A Unix-socket peer is always allowed: the socket file's permissions
  // are its access control, and a CIDR cannot name it.
  std::vector<Cidr> allow;

  bool allows(const Endpoint& peer) const noexcept;
};

// The stage for one connection. next: the stream that carries the data after the header (TLS),
// or null for plain socket I/O.
std::unique_ptr<Stream> make_proxy_stage(std::shared_ptr<const ProxyPolicy> policy,
                                         std::unique_ptr<Stream> next = nullptr);

// A StreamFactory for ServerOptions::stream / ThreadsOptions::stream: a PROXY stage in front
// of what inner makes (inner empty or returning null: plain socket I/O).
StreamFactory proxy_stream_factory(ProxyPolicy policy, StreamFactory inner = {});

}  // namespace keel
