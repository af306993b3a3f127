// keel cat: a netcat-like client. stdin goes to the socket and the socket to stdout; on stdin
// EOF it half-closes and keeps printing until the server closes. poll(2) rather than the event
// loop: stdin may be a regular file, which epoll refuses.
#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "cli/cat_udp.h"
#include "cli/client_tls.h"
#include "cli/commands.h"
#include "cli/validators.h"
#include "keel/error.h"
#include "keel/net/endpoint.h"
#include "keel/net/socket.h"
#include "keel/net/tls.h"

namespace keel::cli {
namespace {

struct CatFlags {
  std::string target;
  int connect_timeout_ms = 5000;
  double idle_timeout_s = 0;
  double reply_timeout_s = 1;  // udp: after stdin ends, wait this long for more replies
  ClientTlsFlags tls;
};

int run_cat(const CatFlags& flags) {
  Endpoint ep = Endpoint::parse(flags.target);
  if (ep.is_udp() && flags.tls.tls) throw Error("--tls: " + ep.to_string() + " is UDP");
  if (ep.is_udp()) return run_cat_udp(ep, flags.reply_timeout_s, flags.idle_timeout_s);
  Socket sock = Socket::stream_for(ep);
  if (int err = connect_with_timeout(sock, ep, flags.connect_timeout_ms)) {
    if (err == ETIMEDOUT)
      return cat_fail(kExitTimeout, "connect " + ep.to_string() + ": timed out after " +
                                        std::to_string(flags.connect_timeout_ms) + " ms");
    return cat_fail(kExitFailure, "connect " + ep.to_string() + ": " + errno_text(err));
  }
  if (!ep.is_unix()) sock.set_no_delay(true);
  std::unique_ptr<Stream> tls;
  if (auto context = client_tls_context(flags.tls, flags.target, ep)) {
    tls = context->make_stream();
    std::string failed = tls_handshake(*tls, sock, ep, flags.connect_timeout_ms);
    if (!failed.empty()) return cat_fail(kExitFailure, ep.to_string() + ": " + failed);
  }
  // The socket's bytes, through TLS when asked for.
  auto sock_send = [&](const char* data, size_t n) {
    return tls ? tls->write(sock.fd(), data, n) : ::send(sock.fd(), data, n, MSG_NOSIGNAL);
  };
  auto sock_recv = [&](char* data, size_t n) {
    return tls ? tls->read(sock.fd(), data, n) : ::recv(sock.fd(), data, n, 0);
  };
  auto broken = [&](int err) {
    return cat_fail(
        kExitBroken,
        ep.to_string() + ": " + (err == EPROTO && tls ? tls->error_detail() : errno_text(err)));
  };

  constexpr size_t kChunk = 64 * 1024;
  auto out_buf = std::make_unique<char[]>(kChunk);  // stdin -> socket
  auto in_buf = std::make_unique<char[]>(kChunk);   // socket -> stdout
  size_t out_len = 0, out_off = 0;
  bool stdin_open = true;
  bool fin_sent = false;
  int idle_ms = flags.idle_timeout_s > 0 ? static_cast<int>(flags.idle_timeout_s * 1000) : -1;

  for (;;) {
    bool pending = out_off < out_len;
    if (!stdin_open && !pending && !fin_sent) {
      if (tls)
        tls->shutdown_write(sock.fd());  // close_notify, then FIN
      else
        ::shutdown(sock.fd(), SHUT_WR);
      fin_sent = true;
    }
    pollfd fds[2];
    fds[0] = {stdin_open && !pending ? STDIN_FILENO : -1, POLLIN, 0};
    fds[1] = {sock.fd(), static_cast<short>(POLLIN | (pending ? POLLOUT : 0)), 0};
    // TLS may hold decrypted input the socket will not signal again: do not wait for it.
    const bool buffered = tls && tls->has_pending_input();
    int rc = ::poll(fds, 2, buffered ? 0 : idle_ms);
    if (rc < 0) {
      if (errno == EINTR) continue;
      return cat_fail(kExitFailure, "poll: " + errno_text(errno));
    }
    if (rc == 0 && !buffered)
      return cat_fail(kExitTimeout, "no data for " + std::to_string(flags.idle_timeout_s) + " s");

    if (fds[0].revents) {
      ssize_t n = ::read(STDIN_FILENO, out_buf.get(), kChunk);
      if (n > 0) {
        out_len = static_cast<size_t>(n);
        out_off = 0;
      } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
        stdin_open = false;  // EOF (or an unreadable stdin): finish our side
      }
    }
    if ((fds[1].revents & POLLOUT) && out_off < out_len) {
      ssize_t n = sock_send(out_buf.get() + out_off, out_len - out_off);
      if (n > 0) {
        out_off += static_cast<size_t>(n);
      } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
        return broken(errno);
      }
    }
    if ((fds[1].revents & (POLLIN | POLLHUP | POLLERR)) || buffered) {
      ssize_t n = sock_recv(in_buf.get(), kChunk);
      if (n > 0) {
        if (!write_all(STDOUT_FILENO, in_buf.get(), static_cast<size_t>(n)))
          return kExitOk;  // stdout closed (e.g. piped into head): nothing more to do
      } else if (n == 0) {
        return kExitOk;  // the server closed: clean end
      } else if (errno != EAGAIN && errno != EINTR) {
        return broken(errno);
      }
    }
  }
}

}  // namespace

int cat_fail(int code, const std::string& message) {
  std::fprintf(stderr, "keel cat: %s\n", message.c_str());
  return code;
}

bool write_all(int fd, const char* data, size_t n) {
  while (n > 0) {
    ssize_t w = ::write(fd, data, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) {  // stdout may be non-blocking if a parent made it so
        pollfd p{fd, POLLOUT, 0};
        ::poll(&p, 1, -1);
        continue;
      }
      return false;
    }
    data += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

void add_cat_command(CLI::App& app, Action& action) {
  auto flags = std::make_shared<CatFlags>();
  CLI::App* cat = app.add_subcommand(
      "cat", "Connect, copy stdin to the server and the server to stdout (like netcat)");
  cat->add_option("endpoint", flags->target,
                  "HOST:PORT, [IPv6]:PORT, unix:/path, or udp:HOST:PORT (each stdin line is sent "
                  "as one datagram; each reply is printed followed by a newline)")
      ->required();
  cat->add_option("--connect-timeout", flags->connect_timeout_ms,
                  "Milliseconds to wait for connect")
      ->check(CLI::Range(1, 3600 * 1000))
      ->capture_default_str();
  cat->add_option("--idle-timeout", flags->idle_timeout_s,
                  "Give up after this many seconds without any traffic (0 = never)")
      ->check(FiniteRange(0.0, 86400.0))
      ->capture_default_str();
  cat->add_option("--timeout", flags->reply_timeout_s,
                  "udp: after stdin ends, keep printing replies until none has come for this "
                  "many seconds, then exit 0")
      ->check(FiniteRange(0.0, 3600.0))
      ->capture_default_str();
  add_client_tls_flags(*cat, flags->tls);
  cat->footer(
      "Exit status: 0 when the server closed cleanly (udp: when replies stopped after stdin\n"
      "ended), 1 when the connection could not be made (udp: refused, line too long),\n"
      "2 on a usage error, 3 when the connection was reset or failed, 4 on a timeout.");
  cat->callback([&action, flags] { action = [flags] { return run_cat(*flags); }; });
}

}  // namespace keel::cli
