// The smallest keel server: echo on 127.0.0.1:7000 with two event-loop threads.
// Build against an installed keel:  find_package(keel) + target_link_libraries(app keel::keel)
#include <keel/net/loop_pool.h>
#include <keel/net/tcp_server.h>

#include <cstdio>

int main() {
  keel::LoopPool loops(2);

  keel::ServerOptions options;
  options.listen.push_back(keel::Endpoint::parse("127.0.0.1:7000"));

  keel::ConnectionCallbacks callbacks;
  callbacks.on_data = [](keel::TcpConnection& conn, keel::Buffer& in) {
    conn.send(in);  // sends and consumes everything received
  };
  // Backpressure: stop reading from a client that does not read its echoes.
  callbacks.on_high_water = [](keel::TcpConnection& conn, size_t) { conn.pause_reading(); };
  callbacks.on_write_complete = [](keel::TcpConnection& conn) { conn.resume_reading(); };

  keel::TcpServer server(loops, options, callbacks);
  server.start();  // throws keel::Error, e.g. "bind 127.0.0.1:7000: Address already in use"
  loops.start();
  std::printf("echo on %s\n", server.endpoints()[0].to_string().c_str());
  std::getchar();  // press Enter to stop
  server.stop();
}
