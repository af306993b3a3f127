#include "keel/net/udp_server.h"

#include <string>
#include <utility>

#include "keel/error.h"

namespace keel {

UdpServer::UdpServer(LoopPool& pool, UdpServerOptions options, DatagramService& service)
    : pool_(pool), options_(std::move(options)), service_(service) {}

UdpServer::~UdpServer() {
  stop();
}

void UdpServer::start() {
  if (started_) return;
  if (options_.listen.empty()) throw Error("udp server: no endpoint to listen on");
  // Bind everything first, so a failure leaves nothing half-started (the sockets built so far
  // close with the vector).
  std::vector<Bound> sockets;
  std::vector<Endpoint> bound;
  for (size_t e = 0; e < options_.listen.size(); ++e) {
    const Endpoint& ep = options_.listen[e];
    if (!ep.is_udp())
      throw Error("udp server: " + ep.to_string() + " is not a UDP endpoint (write udp:HOST:PORT)");
    if (options_.socket_per_loop) {
      UdpSocketOptions opts = options_.socket;
      opts.reuse_port = true;
      Endpoint target = ep;
      for (size_t i = 0; i < pool_.size(); ++i) {
        auto s = std::make_shared<UdpSocket>(pool_.loop(i), target, service_, opts);
        if (i == 0) target = s->local_endpoint();  // port 0: the others join the chosen port
        sockets.push_back({e, std::move(s)});
      }
      bound.push_back(target);
    } else {
      auto s = std::make_shared<UdpSocket>(pool_.next_loop(), ep, service_, options_.socket);
      bound.push_back(s->local_endpoint());
      sockets.push_back({e, std::move(s)});
    }
  }
  sockets_ = std::move(sockets);
  bound_ = std::move(bound);
  for (auto& b : sockets_) {
    UdpSocket* s = b.socket.get();
    pool_.run_on_and_wait(s->loop(), [s] { s->start(); });
  }
  started_ = true;
  running_.store(true, std::memory_order_release);
}

void UdpServer::stop() {
  if (!started_ || !running_.exchange(false, std::memory_order_acq_rel)) return;
  for (auto& b : sockets_) {
    UdpSocket* s = b.socket.get();
    pool_.run_on_and_wait(s->loop(), [s] { s->stop(); });
  }
}

bool UdpServer::send_to(const Endpoint& peer, std::string_view bytes, size_t endpoint_index) {
  if (!running_.load(std::memory_order_acquire) || endpoint_index >= bound_.size()) return false;
  if (bytes.size() > (peer.is_ipv6() ? 65527u : 65507u)) return false;
  for (auto& b : sockets_) {
    if (b.endpoint_index != endpoint_index) continue;
    b.socket->loop().post(
        [socket = b.socket, peer, data = std::string(bytes)] { socket->send_to(peer, data); });
    return true;
  }
  return false;
}

UdpStats UdpServer::stats() const noexcept {
  UdpStats total;
  for (const auto& b : sockets_) total += b.socket->stats();
  return total;
}

}  // namespace keel
