// A UDP server with keel's datagram API: every datagram goes back to its sender, on
// udp:127.0.0.1:7000 (try it with `keel cat udp:127.0.0.1:7000`).
// Build against an installed keel:  find_package(keel) + target_link_libraries(app keel::keel)
#include <keel/datagram_service.h>
#include <keel/net/loop_pool.h>
#include <keel/net/udp_server.h>

#include <cstdio>
#include <string_view>

// on_datagram runs on the socket's loop thread with one whole datagram; replies sent from here
// are queued and leave together (sendmmsg) after the batch that recvmmsg read.
class Echo final : public keel::DatagramService {
 public:
  const char* name() const noexcept override { return "udp echo"; }
  void on_datagram(keel::DatagramSender& socket, const keel::Endpoint& peer,
                   std::string_view bytes) override {
    socket.send_to(peer, bytes);  // never blocks: a full send buffer drops (and counts) it
  }
};

int main() {
  keel::LoopPool loops(1);
  Echo echo;
  keel::UdpServerOptions options;
  options.listen.push_back(keel::Endpoint::parse("udp:127.0.0.1:7000"));
  keel::UdpServer server(loops, options, echo);
  server.start();  // throws keel::Error, e.g. "bind udp:127.0.0.1:7000: Address already in use"
  loops.start();
  std::printf("echo on %s\n", server.endpoints()[0].to_string().c_str());
  std::getchar();  // press Enter to stop
  server.stop();
  keel::UdpStats s = server.stats();
  std::printf("%llu datagrams in, %llu out, %llu truncated, %llu dropped\n",
              static_cast<unsigned long long>(s.datagrams_in),
              static_cast<unsigned long long>(s.datagrams_out),
              static_cast<unsigned long long>(s.truncated),
              static_cast<unsigned long long>(s.send_dropped + s.send_errors));
}
