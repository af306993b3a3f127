// UdpSocket: one bound UDP socket (IPv4 or IPv6) on one EventLoop. Reads datagrams in batches
// with recvmmsg and hands each whole one to a DatagramService; replies queued during a batch
// leave together with sendmmsg. keel's UdpServer is a set of these; a client (keel bench) binds
// one to port 0 and talks to a server with send_to.
//
// Receive size: each datagram gets max_datagram_bytes of room (default 65,536, more than any
// UDP payload, so nothing is truncated unless you lower it). A larger datagram is cut by the
// kernel (MSG_TRUNC), counted in stats().truncated and dropped, never delivered as if whole.
// Memory: batch x max_datagram_bytes of address space per socket (2 MiB by default), of which
// only the pages that datagrams actually fill become resident.
//
// Thread safety: construction, start(), stop(), send_to(), flush() and destruction on the
// loop's thread (or before the loop runs); stats() and local_endpoint() from any thread.
#pragma once

#include <sys/socket.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "keel/datagram_service.h"
#include "keel/net/endpoint.h"
#include "keel/net/event_loop.h"
#include "keel/net/socket.h"

namespace keel {

struct UdpSocketOptions {
  // Room for one received datagram; larger ones are truncated: counted, never delivered.
  size_t max_datagram_bytes = 64 * 1024;
  // Datagrams per recvmmsg / sendmmsg call.
  size_t batch = 32;
  // SO_REUSEPORT, so several sockets (one per loop) can share a port; the kernel spreads
  // datagrams by source address.
  bool reuse_port = false;
  std::optional<int> recv_buffer_bytes;  // SO_RCVBUF (the kernel's default otherwise)
  std::optional<int> send_buffer_bytes;  // SO_SNDBUF
};

// Counters of one socket (or, summed, of a server). Datagrams are counted whole.
struct UdpStats {
  uint64_t datagrams_in = 0;  // delivered to the service
  uint64_t bytes_in = 0;
  uint64_t datagrams_out = 0;  // accepted by the kernel
  uint64_t bytes_out = 0;
  uint64_t truncated = 0;       // larger than max_datagram_bytes: dropped, never delivered
  uint64_t receive_errors = 0;  // recvmmsg failures other than EAGAIN/EINTR
  uint64_t send_dropped = 0;    // send buffer full (EAGAIN/ENOBUFS): dropped, as UDP may
  uint64_t send_errors = 0;     // refused by send_to or the kernel (too big, unreachable, ...)
  UdpStats& operator+=(const UdpStats& o);
};

class UdpSocket final : public DatagramSender, private IoHandler {
 public:
  // Binds a udp: endpoint (throws Error naming it: "bind udp:127.0.0.1:53: Permission denied").
  // service must outlive the socket.
  UdpSocket(EventLoop& loop, const Endpoint& endpoint, DatagramService& service,
            const UdpSocketOptions& options = {});
  // Call stop() first if the socket was started (the loop must not watch a freed handler).
  ~UdpSocket();
  UdpSocket(const UdpSocket&) = delete;
  UdpSocket& operator=(const UdpSocket&) = delete;

  // Starts delivering datagrams to the service.
  void start();
  // Stops reading, sends what is queued and closes the socket; send_to refuses from now on.
  // Idempotent.
  void stop();

  bool send_to(const Endpoint& peer, std::string_view bytes) override;
  // Sends everything queued now (send_to inside on_datagram queues; the batch's end flushes).
  void flush();

  const Endpoint& local_endpoint() const noexcept override { return local_; }
  EventLoop& loop() noexcept { return loop_; }
  UdpStats stats() const noexcept;

 private:
  struct Counter {
    std::atomic<uint64_t> value{0};
    // One writer (the loop thread); readers anywhere. No read-modify-write needed.
    void add(uint64_t n) noexcept {
      value.store(value.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
    }
    uint64_t get() const noexcept { return value.load(std::memory_order_relaxed); }
  };
  struct Outgoing {
    sockaddr_storage peer;
    socklen_t peer_len;
    size_t offset;  // into out_bytes_
    size_t size;
  };

  void handle_events(uint32_t events) override;
  // One recvmmsg and the delivery of what it read. Returns how many datagrams it read.
  size_t receive_batch();

  EventLoop& loop_;
  DatagramService& service_;
  const UdpSocketOptions options_;
  Socket socket_;
  Endpoint local_;
  bool watching_ = false;
  bool stopped_ = false;
  bool delivering_ = false;  // inside a batch's on_datagram calls: send_to queues

  // Receive side: batch slots of max_datagram_bytes each, reused for every recvmmsg.
  std::unique_ptr<char[]> in_area_;
  std::vector<mmsghdr> in_msgs_;
  std::vector<iovec> in_iov_;
  std::vector<sockaddr_storage> in_from_;

  // Send side: datagrams queued during a batch; bytes in one area.
  std::vector<Outgoing> out_;
  std::string out_bytes_;
  std::vector<mmsghdr> out_msgs_;
  std::vector<iovec> out_iov_;

  Counter datagrams_in_, bytes_in_, datagrams_out_, bytes_out_, truncated_, receive_errors_,
      send_dropped_, send_errors_;
};

}  // namespace keel
