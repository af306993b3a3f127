// Helpers shared by the integration and e2e tests: blocking client sockets on loopback,
// bounded waits (poll a condition, never sleep a fixed time), and an in-process server.
#pragma once

#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>

#include "keel/net/endpoint.h"

namespace keel::test {

using namespace std::chrono_literals;

// A connected pair of non-blocking Unix stream sockets (both -1 if socketpair failed), closed
// when it goes; a member set to -1 is left alone (its descriptor was handed over).
struct SocketPair {
  int a = -1, b = -1;
  SocketPair() {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0) {
      a = sv[0];
      b = sv[1];
    }
  }
  ~SocketPair() {
    if (a >= 0) ::close(a);
    if (b >= 0) ::close(b);
  }
  SocketPair(const SocketPair&) = delete;
  SocketPair& operator=(const SocketPair&) = delete;
};

// Polls cond every millisecond until it holds or timeout passes. Returns cond().
inline bool eventually(const std::function<bool()>& cond,
                       std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!cond()) {
    if (std::chrono::steady_clock::now() >= deadline) return cond();
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

// An owned file descriptor for test code (closed by the destructor).
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) noexcept : fd_(fd) {}
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Fd& operator=(Fd&& other) noexcept {
    if (this != &other) reset(other.release());
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { reset(); }

  int get() const noexcept { return fd_; }
  bool valid() const noexcept { return fd_ >= 0; }
  int release() noexcept { return std::exchange(fd_, -1); }
  void reset(int fd = -1) noexcept {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

// A fresh directory from mkdtemp, removed with its (flat) contents by the destructor.
class TempDir {
 public:
  TempDir() {
    std::string pattern = "/tmp/keel-test-XXXXXX";
    if (::mkdtemp(pattern.data()) != nullptr) path_ = pattern;
  }
  ~TempDir() {
    if (path_.empty()) return;
    if (DIR* dir = ::opendir(path_.c_str())) {
      while (dirent* entry = ::readdir(dir)) {
        std::string name = entry->d_name;
        if (name != "." && name != "..") ::unlink((path_ + "/" + name).c_str());
      }
      ::closedir(dir);
    }
    ::rmdir(path_.c_str());
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  // Empty when mkdtemp failed.
  const std::string& path() const noexcept { return path_; }

 private:
  std::string path_;
};

// Deterministic pseudo-random bytes (xorshift), so echoed data can be checked byte for byte and
// a shifted or repeated chunk does not go unnoticed.
inline std::string pattern_bytes(size_t n, uint32_t seed = 1) {
  std::string out(n, '\0');
  uint32_t x = seed ? seed : 1;
  for (size_t i = 0; i < n; ++i) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    out[i] = static_cast<char>(x >> 24);
  }
  return out;
}

// A temporary file holding content, already unlinked (gone with its last descriptor): its
// descriptor, or -1 when it could not be made.
inline int unlinked_temp_file(std::string_view content) {
  char path[] = "/tmp/keel-test-file-XXXXXX";
  int fd = ::mkstemp(path);
  if (fd < 0) return -1;
  ::unlink(path);
  for (size_t done = 0; done < content.size();) {
    ssize_t n = ::write(fd, content.data() + done, content.size() - done);
    if (n <= 0) {
      ::close(fd);
      return -1;
    }
    done += static_cast<size_t>(n);
  }
  return fd;
}

// Waits until fd is ready for events (POLLIN/POLLOUT); false on timeout. EINTR-safe.
inline bool wait_ready(int fd, short events, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() < 0) left = 0ms;
    pollfd p{fd, events, 0};
    int rc = ::poll(&p, 1, static_cast<int>(left.count()));
    if (rc > 0) return true;
    if (rc == 0) return false;
    if (errno != EINTR) return false;
  }
}

// A connected client socket to endpoint, left in blocking mode (every helper below polls with
// a timeout first, so none of them can hang). Invalid on failure; errno says why.
inline Fd connect_to(const Endpoint& endpoint) {
  Fd fd(::socket(endpoint.family(), SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return fd;
  if (::connect(fd.get(), endpoint.sockaddr_ptr(), endpoint.sockaddr_len()) != 0) {
    int err = errno;
    fd.reset();
    errno = err;
  }
  return fd;
}

// recv without blocking; plain read for descriptors that are not sockets (pipes).
inline ssize_t read_some(int fd, char* buf, size_t n) {
  ssize_t got = ::recv(fd, buf, n, MSG_DONTWAIT);
  if (got < 0 && errno == ENOTSOCK) got = ::read(fd, buf, n);
  return got;
}

// Writes all of data to a socket (MSG_NOSIGNAL), waiting at most timeout in total. False on
// error/timeout.
inline bool write_all(int fd, std::string_view data,
                      std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!data.empty()) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0 || !wait_ready(fd, POLLOUT, left)) return false;
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) continue;
      return false;
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

// Reads exactly n bytes, waiting at most timeout in total. Returns what was read: shorter than
// n on EOF, error or timeout.
inline std::string read_exactly(int fd, size_t n,
                                std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  std::string out;
  out.reserve(n);
  auto deadline = std::chrono::steady_clock::now() + timeout;
  char buf[65536];
  while (out.size() < n) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0 || !wait_ready(fd, POLLIN, left)) break;
    size_t want = std::min(sizeof buf, n - out.size());
    ssize_t got = read_some(fd, buf, want);
    if (got < 0 && (errno == EAGAIN || errno == EINTR)) continue;
    if (got <= 0) break;
    out.append(buf, static_cast<size_t>(got));
  }
  return out;
}

// How a stream ended for a reader.
enum class StreamEnd { eof, reset, error, timeout };

inline const char* to_string(StreamEnd end) {
  switch (end) {
    case StreamEnd::eof: return "eof";
    case StreamEnd::reset: return "reset";
    case StreamEnd::error: return "error";
    case StreamEnd::timeout: return "timeout";
  }
  return "?";
}

// Reads until EOF, reset, error or timeout (in total); appends what arrives to *out if given.
inline StreamEnd read_until_end(int fd, std::string* out = nullptr,
                                std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  char buf[65536];
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0 || !wait_ready(fd, POLLIN, left)) return StreamEnd::timeout;
    ssize_t got = read_some(fd, buf, sizeof buf);
    if (got > 0) {
      if (out) out->append(buf, static_cast<size_t>(got));
      continue;
    }
    if (got == 0) return StreamEnd::eof;
    if (errno == EAGAIN || errno == EINTR) continue;
    return errno == ECONNRESET ? StreamEnd::reset : StreamEnd::error;
  }
}

// Sends data and reads the same number of bytes back: one echo round trip.
inline std::string round_trip(int fd, std::string_view data,
                              std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  if (!write_all(fd, data, timeout)) return {};
  return read_exactly(fd, data.size(), timeout);
}

// A port on 127.0.0.1 that nothing listens on (bound, read, closed again): connects to it are
// refused. Another process could take it in between; on loopback in a test run that is rare.
// A connected socket's own address ("127.0.0.1:41234"), as a server lists it as its peer.
inline std::string local_address(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  return Endpoint::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), len).to_string();
}

inline int closed_loopback_port() {
  Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  Endpoint any = Endpoint::parse("127.0.0.1:0");
  if (!fd.valid() || ::bind(fd.get(), any.sockaddr_ptr(), any.sockaddr_len()) != 0) return -1;
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&ss), &len) != 0) return -1;
  return Endpoint::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), len).port();
}

}  // namespace keel::test
