// keel cat udp:HOST:PORT: each line of stdin (without its newline) is sent as one datagram, and
// each datagram that comes back is printed followed by a newline. After stdin ends it keeps
// printing replies until none has arrived for --timeout seconds, then exits 0.
#include "cli/cat_udp.h"

#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <deque>
#include <string>

#include "cli/commands.h"
#include "keel/error.h"
#include "keel/net/socket.h"

namespace keel::cli {
namespace {

using Clock = std::chrono::steady_clock;

// The largest UDP payload (IPv4; IPv6 allows 20 bytes more, but a line is a line).
constexpr size_t kMaxDatagram = 65507;

int ms_until(Clock::time_point deadline, Clock::time_point now) {
  if (deadline <= now) return 0;
  return static_cast<int>(std::chrono::ceil<std::chrono::milliseconds>(deadline - now).count());
}

}  // namespace

int run_cat_udp(const Endpoint& ep, double reply_timeout_s, double idle_timeout_s) {
  Socket sock = Socket::datagram_for(ep);
  // Connected: only the server's datagrams reach us, and "nothing listening" (ICMP port
  // unreachable) comes back as ECONNREFUSED.
  if (::connect(sock.fd(), ep.sockaddr_ptr(), ep.sockaddr_len()) != 0)
    return cat_fail(kExitFailure, "connect " + ep.to_string() + ": " + errno_text(errno));

  const auto quiet =
      std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(reply_timeout_s));
  const auto idle =
      std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(idle_timeout_s));
  std::string partial;              // stdin bytes of a line not yet complete
  std::deque<std::string> to_send;  // complete lines waiting for the socket
  std::string in_buf(64 * 1024, '\0');
  constexpr size_t kReplyRoom = 64 * 1024;  // more than any UDP payload
  std::string reply(kReplyRoom + 1, '\0');  // + 1: room for the newline printed after it
  bool stdin_open = true;
  Clock::time_point last_reply = Clock::now();
  Clock::time_point last_activity = last_reply;

  auto refused = [&](int err) {
    return cat_fail(kExitFailure, ep.to_string() + ": " + errno_text(err) +
                                      (err == ECONNREFUSED ? " (nothing listening there)" : ""));
  };

  for (;;) {
    Clock::time_point now = Clock::now();
    bool finishing = !stdin_open && to_send.empty();
    if (finishing && now - last_reply >= quiet) return kExitOk;
    if (idle_timeout_s > 0 && now - last_activity >= idle)
      return cat_fail(kExitTimeout, "no data for " + std::to_string(idle_timeout_s) + " s");
    int wait_ms = -1;
    if (finishing) wait_ms = ms_until(last_reply + quiet, now);
    if (idle_timeout_s > 0) {
      int idle_ms = ms_until(last_activity + idle, now);
      wait_ms = wait_ms < 0 ? idle_ms : std::min(wait_ms, idle_ms);
    }

    pollfd fds[2];
    fds[0] = {stdin_open && to_send.empty() ? STDIN_FILENO : -1, POLLIN, 0};
    fds[1] = {sock.fd(), static_cast<short>(POLLIN | (to_send.empty() ? 0 : POLLOUT)), 0};
    int rc = ::poll(fds, 2, wait_ms);
    if (rc < 0) {
      if (errno == EINTR) continue;
      return cat_fail(kExitFailure, "poll: " + errno_text(errno));
    }
    if (rc == 0) continue;  // a deadline passed: checked at the top

    if (fds[0].revents) {
      ssize_t n = ::read(STDIN_FILENO, in_buf.data(), in_buf.size());
      if (n > 0) {
        last_activity = Clock::now();
        partial.append(in_buf.data(), static_cast<size_t>(n));
        size_t start = 0;
        for (size_t nl; (nl = partial.find('\n', start)) != std::string::npos; start = nl + 1)
          to_send.push_back(partial.substr(start, nl - start));
        partial.erase(0, start);
      } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
        stdin_open = false;  // EOF (or an unreadable stdin): a last unterminated line still goes
        if (!partial.empty()) to_send.push_back(std::move(partial));
        partial.clear();
        last_reply = Clock::now();  // the --timeout wait starts when input ends
      }
      if (partial.size() > kMaxDatagram)
        return cat_fail(kExitFailure, "a line of over " + std::to_string(kMaxDatagram) +
                                          " bytes cannot be one datagram");
      for (const std::string& line : to_send)
        if (line.size() > kMaxDatagram)
          return cat_fail(kExitFailure, "a line of " + std::to_string(line.size()) +
                                            " bytes cannot be one datagram (at most " +
                                            std::to_string(kMaxDatagram) + ")");
    }
    if (!to_send.empty()) {  // non-blocking: whatever the socket will not take waits for POLLOUT
      while (!to_send.empty()) {
        const std::string& line = to_send.front();
        ssize_t n = ::send(sock.fd(), line.data(), line.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
          if (errno == EINTR) continue;
          if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) break;  // poll again
          return refused(errno);
        }
        to_send.pop_front();
      }
      if (!stdin_open && to_send.empty()) last_reply = Clock::now();
    }
    if (fds[1].revents & (POLLIN | POLLERR)) {
      for (int i = 0; i < 64; ++i) {
        ssize_t n = ::recv(sock.fd(), reply.data(), kReplyRoom, MSG_DONTWAIT | MSG_TRUNC);
        if (n < 0) {
          if (errno == EINTR) continue;
          if (errno == EAGAIN || errno == EWOULDBLOCK) break;
          return refused(errno);
        }
        last_reply = last_activity = Clock::now();
        size_t len = std::min(static_cast<size_t>(n), kReplyRoom);
        reply[len] = '\n';
        if (!write_all(STDOUT_FILENO, reply.data(), len + 1))
          return kExitOk;  // stdout closed (e.g. piped into head): nothing more to do
      }
    }
  }
}

}  // namespace keel::cli
