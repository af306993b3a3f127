// asio_echo: a single-threaded echo server on standalone asio (Debian libasio-dev), written the
// way the asio documentation teaches it, for the peer comparison (bench/compare).
//
// One io_context run on the main thread (concurrency hint 1). Each connection owns a 16 KiB
// buffer and loops async_read_some -> async_write(all of it) -> async_read_some, so it never
// holds more than one buffer of data (write-then-read: memory is bounded by construction).
// Half-close: on EOF nothing is pending (the last write completed before the read was issued),
// so the server shuts down its sending side and closes.
// Same socket settings as keel: TCP_NODELAY on accepted sockets, listen backlog 4096.
//
// Usage: asio_echo [--port N]   (N = 0, the default, lets the kernel choose)
// Prints "listening on 127.0.0.1:PORT" to stderr once listening.
#include <asio.hpp>
#include <array>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <utility>

namespace {

using asio::ip::tcp;

constexpr size_t kBufferBytes = 16 * 1024;
constexpr int kBacklog = 4096;

class Session : public std::enable_shared_from_this<Session> {
 public:
  explicit Session(tcp::socket socket) : socket_(std::move(socket)) {}

  void start() { read(); }

 private:
  void read() {
    socket_.async_read_some(asio::buffer(buffer_),
                            [self = shared_from_this()](std::error_code ec, size_t n) {
                              if (!ec) {
                                self->write(n);
                              } else {
                                // EOF (half-close) or error: nothing is pending, so finish.
                                std::error_code ignored;
                                self->socket_.shutdown(tcp::socket::shutdown_send, ignored);
                                self->socket_.close(ignored);
                              }
                            });
  }

  void write(size_t n) {
    asio::async_write(socket_, asio::buffer(buffer_.data(), n),
                      [self = shared_from_this()](std::error_code ec, size_t) {
                        if (!ec) {
                          self->read();
                        } else {
                          std::error_code ignored;
                          self->socket_.close(ignored);
                        }
                      });
  }

  tcp::socket socket_;
  std::array<char, kBufferBytes> buffer_;
};

class Server {
 public:
  Server(asio::io_context& io, unsigned short port) : acceptor_(io) {
    tcp::endpoint endpoint(asio::ip::make_address_v4("127.0.0.1"), port);
    acceptor_.open(endpoint.protocol());
    acceptor_.set_option(tcp::acceptor::reuse_address(true));
    acceptor_.bind(endpoint);
    acceptor_.listen(kBacklog);
  }

  unsigned short port() const { return acceptor_.local_endpoint().port(); }

  void accept() {
    acceptor_.async_accept([this](std::error_code ec, tcp::socket socket) {
      if (!ec) {
        std::error_code ignored;
        socket.set_option(tcp::no_delay(true), ignored);
        std::make_shared<Session>(std::move(socket))->start();
      } else if (ec == asio::error::no_descriptors) {
        std::fprintf(stderr, "asio_echo: accept: %s\n", ec.message().c_str());
      }
      accept();
    });
  }

 private:
  tcp::acceptor acceptor_;
};

int parse_port(int argc, char** argv) {
  int port = 0;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
      port = std::atoi(argv[++i]);
    } else {
      std::fprintf(stderr, "usage: %s [--port N]\n", argv[0]);
      std::exit(2);
    }
  }
  if (port < 0 || port > 65535) {
    std::fprintf(stderr, "asio_echo: bad port %d\n", port);
    std::exit(2);
  }
  return port;
}

}  // namespace

int main(int argc, char** argv) {
  int port = parse_port(argc, argv);
  std::signal(SIGPIPE, SIG_IGN);
  try {
    asio::io_context io(1);
    Server server(io, static_cast<unsigned short>(port));
    std::fprintf(stderr, "listening on 127.0.0.1:%u\n", unsigned{server.port()});
    server.accept();
    io.run();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "asio_echo: %s\n", e.what());
    return 1;
  }
}
