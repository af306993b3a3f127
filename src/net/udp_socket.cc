#include "keel/net/udp_socket.h"

#include <errno.h>
#include <netinet/in.h>
#include <sys/epoll.h>

#include <algorithm>
#include <cstring>

#include "keel/error.h"

namespace keel {
namespace {

// The largest UDP payload: 65,535 minus the UDP header (8) and, for IPv4, the IP header (20).
size_t max_payload(const Endpoint& peer) {
  return peer.is_ipv6() ? 65527 : 65507;
}

// Read passes per readiness event: at most this many batches, then the other descriptors of the
// loop get their turn (epoll is level-triggered, so what is left wakes us again).
constexpr int kBatchesPerWakeup = 8;

}  // namespace

UdpStats& UdpStats::operator+=(const UdpStats& o) {
  datagrams_in += o.datagrams_in;
  bytes_in += o.bytes_in;
  datagrams_out += o.datagrams_out;
  bytes_out += o.bytes_out;
  truncated += o.truncated;
  receive_errors += o.receive_errors;
  send_dropped += o.send_dropped;
  send_errors += o.send_errors;
  return *this;
}

UdpSocket::UdpSocket(EventLoop& loop, const Endpoint& endpoint, DatagramService& service,
                     const UdpSocketOptions& options)
    : loop_(loop), service_(service), options_(options) {
  if (!endpoint.is_udp())
    throw Error("bind " + endpoint.to_string() + ": not a UDP endpoint (write udp:HOST:PORT)");
  if (options_.batch < 1 || options_.batch > 1024)
    throw Error("bind " + endpoint.to_string() + ": batch must be 1 to 1024 datagrams");
  if (options_.max_datagram_bytes < 1 || options_.max_datagram_bytes > 64 * 1024)
    throw Error("bind " + endpoint.to_string() + ": max_datagram_bytes must be 1 to 65536");
  socket_ = Socket::datagram_for(endpoint);
  if (options_.reuse_port) socket_.set_reuse_port(true);
  if (endpoint.is_ipv6()) {
    int on = 1;  // [::]:port means IPv6 only, as for TCP listeners.
    ::setsockopt(socket_.fd(), IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on);
  }
  if (options_.recv_buffer_bytes) socket_.set_recv_buffer(*options_.recv_buffer_bytes);
  if (options_.send_buffer_bytes) socket_.set_send_buffer(*options_.send_buffer_bytes);
  if (::bind(socket_.fd(), endpoint.sockaddr_ptr(), endpoint.sockaddr_len()) != 0)
    throw_system_error("bind", endpoint.to_string(), errno);
  Endpoint bound = socket_.local_endpoint();
  local_ = Endpoint::from_sockaddr(bound.sockaddr_ptr(), bound.sockaddr_len(),
                                   Endpoint::Transport::datagram);

  const size_t n = options_.batch;
  // Not value-initialised: pages are touched only as datagrams fill them.
  in_area_.reset(new char[n * options_.max_datagram_bytes]);
  in_msgs_.resize(n);
  in_iov_.resize(n);
  in_from_.resize(n);
  for (size_t i = 0; i < n; ++i) {
    in_iov_[i] = {in_area_.get() + i * options_.max_datagram_bytes, options_.max_datagram_bytes};
    std::memset(&in_msgs_[i], 0, sizeof in_msgs_[i]);
    in_msgs_[i].msg_hdr.msg_name = &in_from_[i];
    in_msgs_[i].msg_hdr.msg_iov = &in_iov_[i];
    in_msgs_[i].msg_hdr.msg_iovlen = 1;
  }
  out_.reserve(n);
  out_msgs_.resize(n);
  out_iov_.resize(n);
}

UdpSocket::~UdpSocket() = default;

void UdpSocket::start() {
  loop_.assert_in_loop();
  if (watching_ || stopped_) return;
  loop_.watch(socket_.fd(), EPOLLIN, this);
  watching_ = true;
}

void UdpSocket::stop() {
  loop_.assert_in_loop();
  if (stopped_) return;
  flush();
  if (watching_) loop_.unwatch(socket_.fd());
  watching_ = false;
  stopped_ = true;
  socket_.reset();
}

void UdpSocket::handle_events(uint32_t) {
  for (int pass = 0; pass < kBatchesPerWakeup && !stopped_; ++pass)
    if (receive_batch() < options_.batch) break;  // drained
}

size_t UdpSocket::receive_batch() {
  const size_t n = options_.batch;
  for (size_t i = 0; i < n; ++i) {
    in_msgs_[i].msg_hdr.msg_namelen = sizeof(sockaddr_storage);
    in_msgs_[i].msg_hdr.msg_flags = 0;
    in_msgs_[i].msg_len = 0;
  }
  int got;
  do {
    got =
        ::recvmmsg(socket_.fd(), in_msgs_.data(), static_cast<unsigned>(n), MSG_DONTWAIT, nullptr);
  } while (got < 0 && errno == EINTR);
  if (got < 0) {
    if (errno != EAGAIN && errno != EWOULDBLOCK) receive_errors_.add(1);
    return 0;
  }
  delivering_ = true;
  for (int i = 0; i < got && !stopped_; ++i) {
    const msghdr& h = in_msgs_[i].msg_hdr;
    if (h.msg_flags & MSG_TRUNC) {
      truncated_.add(1);  // only part of it is here: never pass it on as if whole
      continue;
    }
    size_t len = in_msgs_[i].msg_len;
    datagrams_in_.add(1);
    bytes_in_.add(len);
    Endpoint peer = Endpoint::from_sockaddr(static_cast<const sockaddr*>(h.msg_name), h.msg_namelen,
                                            Endpoint::Transport::datagram);
    service_.on_datagram(*this, peer,
                         std::string_view(in_area_.get() + i * options_.max_datagram_bytes, len));
  }
  delivering_ = false;
  flush();
  return static_cast<size_t>(got);
}

bool UdpSocket::send_to(const Endpoint& peer, std::string_view bytes) {
  loop_.assert_in_loop();
  if (stopped_ || bytes.size() > max_payload(peer) || peer.sockaddr_len() == 0) {
    send_errors_.add(1);
    return false;
  }
  Outgoing o{};
  std::memcpy(&o.peer, peer.sockaddr_ptr(), peer.sockaddr_len());
  o.peer_len = peer.sockaddr_len();
  o.offset = out_bytes_.size();
  o.size = bytes.size();
  out_bytes_.append(bytes);
  out_.push_back(o);
  // Outside a batch there is nothing to gather replies with; a full batch goes at once.
  if (!delivering_ || out_.size() >= options_.batch) flush();
  return true;
}

void UdpSocket::flush() {
  loop_.assert_in_loop();
  size_t i = 0;
  const size_t total = out_.size();
  while (i < total) {
    const size_t chunk = std::min(total - i, options_.batch);
    for (size_t k = 0; k < chunk; ++k) {
      Outgoing& o = out_[i + k];
      out_iov_[k] = {out_bytes_.data() + o.offset, o.size};
      std::memset(&out_msgs_[k], 0, sizeof out_msgs_[k]);
      out_msgs_[k].msg_hdr.msg_name = &o.peer;
      out_msgs_[k].msg_hdr.msg_namelen = o.peer_len;
      out_msgs_[k].msg_hdr.msg_iov = &out_iov_[k];
      out_msgs_[k].msg_hdr.msg_iovlen = 1;
    }
    int sent = ::sendmmsg(socket_.fd(), out_msgs_.data(), static_cast<unsigned>(chunk),
                          MSG_DONTWAIT | MSG_NOSIGNAL);
    if (sent == 0) break;  // not expected for a non-empty chunk; never spin on it
    if (sent > 0) {
      for (int k = 0; k < sent; ++k) bytes_out_.add(out_[i + k].size);
      datagrams_out_.add(static_cast<uint64_t>(sent));
      i += static_cast<size_t>(sent);
      continue;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) {
      // The send buffer is full: the rest would fail the same way. Never wait: drop them.
      send_dropped_.add(total - i);
      break;
    }
    send_errors_.add(1);  // this one was refused (too big, unreachable, ...); try the rest
    ++i;
  }
  out_.clear();
  out_bytes_.clear();
}

UdpStats UdpSocket::stats() const noexcept {
  UdpStats s;
  s.datagrams_in = datagrams_in_.get();
  s.bytes_in = bytes_in_.get();
  s.datagrams_out = datagrams_out_.get();
  s.bytes_out = bytes_out_.get();
  s.truncated = truncated_.get();
  s.receive_errors = receive_errors_.get();
  s.send_dropped = send_dropped_.get();
  s.send_errors = send_errors_.get();
  return s;
}

}  // namespace keel
