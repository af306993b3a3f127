// Machinery shared by the fault tests (issue 9, item 4): good clients that run alongside the bad
// ones and check every byte they get back, in order, recording each round trip's latency; the
// server's resident memory from /proc/PID/status (sampled for its peak, and waited on until it
// is back near its baseline); and the one line each test prints:
//   [fault] slowloris: good clients p99 1.8 ms (4 clients, 3,100 round trips), rss baseline
//   5.1 MiB, peak 9.0, after 5.3
// Thread safety: each object has one owner; the probes run their clients on their own threads.
#pragma once

#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "e2e/subprocess.h"
#include "test_util.h"

namespace keel::test::fault {

using Clock = std::chrono::steady_clock;

// Sanitizer builds run the server several times slower and hold freed memory in quarantine:
// the tests that say so scale their counts and memory bounds with this.
#if defined(__SANITIZE_ADDRESS__)
inline constexpr bool kSanitized = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
inline constexpr bool kSanitized = true;
#else
inline constexpr bool kSanitized = false;
#endif
#else
inline constexpr bool kSanitized = false;
#endif

// VmRSS of pid in KiB; 0 when it cannot be read (the process is gone).
inline size_t rss_kib(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stoul(line.substr(6));
  return 0;
}

inline double mib(size_t kib) {
  return static_cast<double>(kib) / 1024.0;
}

// Samples a process's RSS every 10 ms on its own thread and keeps the peak.
class RssPeak {
 public:
  explicit RssPeak(pid_t pid) : pid_(pid), thread_([this] { run(); }) {}
  ~RssPeak() {
    stop_ = true;
    thread_.join();
  }
  size_t peak_kib() const { return std::max(peak_.load(), rss_kib(pid_)); }

 private:
  void run() {
    while (!stop_) {
      peak_ = std::max(peak_.load(), rss_kib(pid_));
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  pid_t pid_;
  std::atomic<bool> stop_{false};
  std::atomic<size_t> peak_{0};
  std::thread thread_;
};

// Under ASan the server's freed memory waits in a 256 MiB quarantine and goes back to the kernel
// only every 5 s, so its RSS could not come back within a test: the servers the fault tests
// start get a 16 MiB quarantine and a 500 ms release interval (the child inherits ASAN_OPTIONS).
inline void shrink_asan_quarantine() {
  if (!kSanitized) return;
  static const bool done = [] {
    std::string options = std::getenv("ASAN_OPTIONS") ? std::getenv("ASAN_OPTIONS") : "";
    options += std::string(options.empty() ? "" : ":") +
               "quarantine_size_mb=16:allocator_release_to_os_interval_ms=500";
    return ::setenv("ASAN_OPTIONS", options.c_str(), 1) == 0;
  }();
  (void)done;
}

// How far above its baseline a server's RSS may stay once the bad clients are gone: twice the
// baseline plus 8 MiB (what the allocator keeps for the next burst, the loops' scratch and a
// few kernel-side pages); under ASan its allocator's caches add up to 64 MiB more.
inline size_t rss_bound_kib(size_t baseline_kib) {
  return 2 * baseline_kib + 8 * 1024 + (kSanitized ? 64 * 1024 : 0);
}

// Waits (at most timeout) for pid's RSS to come within rss_bound_kib(baseline); returns the
// last reading.
inline size_t wait_rss_back(pid_t pid, size_t baseline_kib,
                            std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  size_t now = rss_kib(pid);
  eventually(
      [&] {
        now = rss_kib(pid);
        return now <= rss_bound_kib(baseline_kib);
      },
      timeout);
  return now;
}

// What a probe saw: round trips (or messages), bytes, the first error (empty when none), and
// latency percentiles in milliseconds.
struct ProbeResult {
  size_t clients = 0;
  uint64_t round_trips = 0;
  uint64_t bytes = 0;
  std::string error;
  double p50_ms = 0, p99_ms = 0, max_ms = 0;
};

class ProbeBase {
 public:
  ProbeBase(const ProbeBase&) = delete;
  ProbeBase& operator=(const ProbeBase&) = delete;
  virtual ~ProbeBase() { join(); }

  // Stops the clients (each finishes its round trip) and summarises.
  ProbeResult stop() {
    join();
    ProbeResult r;
    r.clients = clients_;
    r.round_trips = samples_us_.size();
    r.bytes = bytes_;
    r.error = error_;
    std::sort(samples_us_.begin(), samples_us_.end());
    auto at = [&](double q) {
      if (samples_us_.empty()) return 0.0;
      size_t i = std::min(samples_us_.size() - 1, static_cast<size_t>(q * samples_us_.size()));
      return samples_us_[i] / 1000.0;
    };
    r.p50_ms = at(0.50);
    r.p99_ms = at(0.99);
    r.max_ms = samples_us_.empty() ? 0 : samples_us_.back() / 1000.0;
    return r;
  }
  uint64_t round_trips() {
    std::lock_guard lock(mutex_);
    return samples_us_.size() + pending_;
  }
  // Waits until every client has made at least n more round trips than now (proof that the
  // good clients are served at this moment, not only before).
  bool progresses(uint64_t n, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    uint64_t start = round_trips();
    return eventually([&] { return round_trips() >= start + n * clients_ || failed(); }, timeout) &&
           !failed();
  }
  bool failed() {
    std::lock_guard lock(mutex_);
    return !error_.empty();
  }

 protected:
  explicit ProbeBase(size_t clients) : clients_(clients) {}
  void join() {
    stop_ = true;
    for (auto& t : threads_)
      if (t.joinable()) t.join();
  }
  void record(Clock::duration took, size_t bytes) {
    std::lock_guard lock(mutex_);
    samples_us_.push_back(
        static_cast<double>(std::chrono::duration_cast<std::chrono::microseconds>(took).count()));
    bytes_ += bytes;
  }
  void fail(const std::string& why) {
    std::lock_guard lock(mutex_);
    if (error_.empty()) error_ = why;
    stop_ = true;
  }

  const size_t clients_;
  std::atomic<bool> stop_{false};
  std::vector<std::thread> threads_;
  std::mutex mutex_;
  std::vector<double> samples_us_;
  uint64_t pending_ = 0;
  uint64_t bytes_ = 0;
  std::string error_;
};

// Good echo clients: each sends chunk_bytes of a deterministic byte stream every pace, reads
// the same bytes back (compared byte for byte with what it sent), and records the round trip.
// A short, wrong or late (5 s) answer stops the probe with the reason.
class EchoProbe final : public ProbeBase {
 public:
  EchoProbe(const Endpoint& server, size_t clients = 4, size_t chunk_bytes = 1024,
            std::chrono::milliseconds pace = std::chrono::milliseconds(5))
      : EchoProbe(connect_all(server, clients), chunk_bytes, pace) {}
  // Clients connected by the caller (in another network namespace, say); invalid ones fail.
  EchoProbe(std::vector<Fd> connected, size_t chunk_bytes = 1024,
            std::chrono::milliseconds pace = std::chrono::milliseconds(5))
      : ProbeBase(connected.size()) {
    for (size_t i = 0; i < connected.size(); ++i) {
      if (!connected[i].valid()) {
        fail("good client " + std::to_string(i) + " could not connect");
        return;
      }
      threads_.emplace_back([this, i, chunk_bytes, pace, fd = std::move(connected[i])]() mutable {
        run(i, std::move(fd), chunk_bytes, pace);
      });
    }
  }

 private:
  static std::vector<Fd> connect_all(const Endpoint& server, size_t clients) {
    std::vector<Fd> fds;
    for (size_t i = 0; i < clients; ++i) fds.push_back(connect_to(server));
    return fds;
  }
  void run(size_t i, Fd fd, size_t chunk_bytes, std::chrono::milliseconds pace) {
    // A stream longer than any test's traffic would wrap at: each chunk starts where the last
    // ended, so a lost, repeated or reordered chunk shows as a mismatch.
    const std::string stream = pattern_bytes(1 << 20, static_cast<uint32_t>(i + 1));
    size_t offset = 0;
    std::string chunk;
    while (!stop_) {
      chunk.clear();
      while (chunk.size() < chunk_bytes) {
        size_t take = std::min(chunk_bytes - chunk.size(), stream.size() - offset);
        chunk.append(stream, offset, take);
        offset = (offset + take) % stream.size();
      }
      auto start = Clock::now();
      std::string back = round_trip(fd.get(), chunk, std::chrono::seconds(5));
      if (back != chunk) {
        fail("good client " + std::to_string(i) + ": " + std::to_string(back.size()) + " of " +
             std::to_string(chunk.size()) + " bytes came back" +
             (back.size() == chunk.size() ? " but different" : ""));
        return;
      }
      record(Clock::now() - start, chunk.size());
      std::this_thread::sleep_for(pace);
    }
  }
};

// Good chat clients, all in one room: each sends "<seq> <filler>" lines every pace and checks
// that every good member's lines reach it whole and in order (seq one more than the last from
// that sender), itself included; the latency is from sending a line to reading it back.
class ChatProbe final : public ProbeBase {
 public:
  ChatProbe(const Endpoint& server, size_t clients = 4,
            std::chrono::milliseconds pace = std::chrono::milliseconds(10))
      : ProbeBase(clients) {
    std::vector<Fd> fds;
    for (size_t i = 0; i < clients; ++i) {
      Fd fd = connect_to(server);
      std::string nick = "good" + std::to_string(i);
      std::string joined = "* " + nick + " joined #fault\n";
      if (!fd.valid() || !write_all(fd.get(), "/nick " + nick + "\n/join fault\n") ||
          !read_through(fd.get(), joined)) {
        fail(nick + " could not join #fault");
        return;
      }
      fds.push_back(std::move(fd));
    }
    // Every member sees the later joins: read them so each starts from the same point.
    for (size_t i = 0; i + 1 < clients; ++i)
      if (!read_through(fds[i].get(), "* good" + std::to_string(clients - 1) + " joined #fault\n"))
        fail("good" + std::to_string(i) + " missed the last join");
    for (size_t i = 0; i < clients; ++i)
      threads_.emplace_back(
          [this, i, pace, fd = std::move(fds[i])]() mutable { run(i, std::move(fd), pace); });
  }

 private:
  // Reads until `line` has been read (5 s at most).
  static bool read_through(int fd, const std::string& line) {
    std::string got;
    auto deadline = Clock::now() + std::chrono::seconds(5);
    while (got.find(line) == std::string::npos) {
      std::string more = read_exactly(
          fd, 1, std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()));
      if (more.empty()) return false;
      got += more;
    }
    return true;
  }

  void run(size_t i, Fd fd, std::chrono::milliseconds pace) {
    const std::string me = "<good" + std::to_string(i) + "> ";
    const std::string filler(64, static_cast<char>('a' + i % 26));
    std::map<std::string, uint64_t> next_seq;  // per sender
    std::string in;
    uint64_t seq = 0;
    char buf[65536];
    while (!stop_) {
      std::string line = std::to_string(seq) + " " + filler + "\n";
      auto start = Clock::now();
      if (!write_all(fd.get(), line, std::chrono::seconds(5))) return fail(me + "could not send");
      bool mine_back = false;
      while (!mine_back) {
        size_t eol;
        while ((eol = in.find('\n')) != std::string::npos) {
          std::string got = in.substr(0, eol);
          in.erase(0, eol + 1);
          size_t close = got.find("> ");
          if (got.empty() || got[0] != '<' || close == std::string::npos) continue;  // notices
          std::string sender = got.substr(0, close + 2);
          uint64_t n = std::stoull(got.substr(close + 2));
          if (n != next_seq[sender] ||
              got.substr(got.find(' ', close + 2) + 1) != std::string(64, got.back()))
            return fail(me + "got \"" + got + "\" when " + sender + " " +
                        std::to_string(next_seq[sender]) + " was due");
          ++next_seq[sender];
          if (sender == me && n == seq) mine_back = true;
        }
        if (mine_back) break;
        if (!wait_ready(fd.get(), POLLIN, std::chrono::seconds(5)))
          return fail(me + "line " + std::to_string(seq) + " did not come back within 5 s");
        ssize_t got = ::recv(fd.get(), buf, sizeof buf, 0);
        if (got <= 0) return fail(me + "connection closed");
        in.append(buf, static_cast<size_t>(got));
      }
      record(Clock::now() - start, line.size());
      ++seq;
      std::this_thread::sleep_for(pace);
    }
  }
};

// The server under test: `[prefix...] keel <args...>` as a subprocess (args include
// `--listen 127.0.0.1:0`), with the port it logged. prefix: e.g. prlimit and its options.
struct Server {
  explicit Server(std::vector<std::string> args, std::vector<std::string> prefix = {})
      : process((shrink_asan_quarantine(), command(std::move(args), std::move(prefix)))) {
    if (auto p = logged_port(process)) port = *p;
  }
  Endpoint endpoint() const { return Endpoint::parse("127.0.0.1:" + std::to_string(port)); }
  pid_t pid() const { return process.pid(); }

  static std::vector<std::string> command(std::vector<std::string> args,
                                          std::vector<std::string> prefix) {
    prefix.push_back(KEEL_BINARY);
    prefix.insert(prefix.end(), args.begin(), args.end());
    return prefix;
  }
  Subprocess process;
  int port = 0;
};

// The first service's row of `keel ctl --admin ADMIN --json stats` (connections, closed per
// reason, ...); null when ctl fails.
inline nlohmann::json service_stats(const std::string& admin) {
  Subprocess ctl({KEEL_BINARY, "ctl", "--admin", admin, "--json", "stats"});
  if (ctl.wait() != 0) return nullptr;
  nlohmann::json reply = nlohmann::json::parse(ctl.out(), nullptr, false);
  if (!reply.is_object() || !reply["services"].is_array() || reply["services"].empty())
    return nullptr;
  return reply["services"][0];
}

// Waits until the server holds `connections` connections (by its own count).
inline bool holds(const std::string& admin, uint64_t connections,
                  std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  return eventually(
      [&] {
        nlohmann::json row = service_stats(admin);
        return row.is_object() && row["connections"] == connections;
      },
      timeout);
}

// The fault line, printed for the log and recorded as test properties.
inline std::string report(const std::string& name, const ProbeResult& probe, size_t baseline_kib,
                          size_t peak_kib, size_t after_kib) {
  char line[512];
  std::snprintf(line, sizeof line,
                "[fault] %s: good clients p99 %.2f ms (p50 %.2f, max %.2f; %zu clients, %llu "
                "round trips, %llu bytes), rss baseline %.1f MiB, peak %.1f, after %.1f",
                name.c_str(), probe.p99_ms, probe.p50_ms, probe.max_ms, probe.clients,
                static_cast<unsigned long long>(probe.round_trips),
                static_cast<unsigned long long>(probe.bytes), mib(baseline_kib), mib(peak_kib),
                mib(after_kib));
  std::printf("%s\n", line);
  std::fflush(stdout);
  return line;
}

// Closes with a reset (SO_LINGER 0) instead of a FIN.
inline void reset(Fd& fd) {
  linger l{1, 0};
  ::setsockopt(fd.get(), SOL_SOCKET, SO_LINGER, &l, sizeof l);
  fd.reset();
}

inline Fd nonblocking_client(const Endpoint& server, int rcvbuf = 0) {
  Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (rcvbuf) ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  if (::connect(fd.get(), server.sockaddr_ptr(), server.sockaddr_len()) != 0 &&
      errno != EINPROGRESS)
    fd.reset();
  return fd;
}

// One client of a big echo: sends `total` bytes of `stream` while reading the echo back and
// checking it, and resets the connection once `reset_after` bytes have come back. Returns
// what went wrong, or "".
inline std::string echo_then_reset(const Endpoint& server, const std::string& stream,
                                   size_t reset_after) {
  Fd fd = nonblocking_client(server);
  if (!fd.valid()) return std::string("connect: ") + std::strerror(errno);
  size_t sent = 0, got = 0;
  char buf[65536];
  const auto deadline = Clock::now() + 30s;
  while (got < reset_after) {
    if (Clock::now() > deadline) return "stalled at " + std::to_string(got) + " bytes back";
    pollfd p{fd.get(), static_cast<short>(POLLIN | (sent < stream.size() ? POLLOUT : 0)), 0};
    if (::poll(&p, 1, 1000) <= 0) continue;
    if (p.revents & POLLOUT) {
      ssize_t n =
          ::send(fd.get(), stream.data() + sent, std::min<size_t>(65536, stream.size() - sent),
                 MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) sent += static_cast<size_t>(n);
    }
    if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
      ssize_t n = ::recv(fd.get(), buf, sizeof buf, MSG_DONTWAIT);
      if (n == 0) return "closed by the server at " + std::to_string(got);
      if (n < 0 && errno != EAGAIN) return std::string("recv: ") + std::strerror(errno);
      if (n > 0) {
        if (std::memcmp(buf, stream.data() + got, static_cast<size_t>(n)) != 0)
          return "wrong bytes at " + std::to_string(got);
        got += static_cast<size_t>(n);
      }
    }
  }
  reset(fd);  // with both directions in flight
  return "";
}

// One fault test's frame: the server (with an admin socket for `keel ctl stats`), the good
// clients running alongside, and the server's RSS baseline once they are warm.
//   Scene s({"echo", "--idle-timeout", "2"});
//   ASSERT_TRUE(s.begin());
//   ... the bad clients come and go ...
//   s.end("1,000 silent clients");  // good clients still served, memory back, the line printed
class Scene {
 public:
  static constexpr size_t kGoodClients = 4;

  explicit Scene(std::vector<std::string> args, std::vector<std::string> prefix = {})
      : admin("unix:" + dir_.path() + "/admin.sock"),
        server(with_listen(std::move(args), admin), std::move(prefix)) {}

  // Starts the good clients (chat ones in room #fault, else echo) and takes the baseline once
  // each has made 20 round trips.
  ::testing::AssertionResult begin(bool chat = false) {
    if (server.port == 0)
      return ::testing::AssertionFailure() << "the server did not start: " << server.process.err();
    if (chat)
      probe = std::make_unique<ChatProbe>(server.endpoint(), kGoodClients);
    else
      probe = std::make_unique<EchoProbe>(server.endpoint(), kGoodClients);
    if (!probe->progresses(20))
      return ::testing::AssertionFailure()
             << "the good clients never got going: " << probe->stop().error;
    baseline_kib = rss_kib(server.pid());
    peak = std::make_unique<RssPeak>(server.pid());
    return ::testing::AssertionSuccess();
  }

  // With the bad clients gone: the good ones are still served, every byte was right, the
  // server's memory is back within rss_bound_kib(baseline), and it stops cleanly on SIGTERM.
  void end(const std::string& name) {
    EXPECT_TRUE(probe->progresses(20)) << "the good clients stalled after the bad ones left";
    size_t after = wait_rss_back(server.pid(), baseline_kib);
    size_t peak_kib = peak->peak_kib();
    ProbeResult r = probe->stop();
    std::string line = report(name, r, baseline_kib, peak_kib, after);
    ::testing::Test::RecordProperty("fault", line);
    EXPECT_EQ(r.error, "");
    EXPECT_GT(r.round_trips, 40u * kGoodClients);
    EXPECT_LE(after, rss_bound_kib(baseline_kib))
        << "the server's memory did not come back: " << line;
    server.process.signal(SIGTERM);
    EXPECT_EQ(server.process.wait(std::chrono::seconds(20)), 0) << server.process.err();
  }

 private:
  static std::vector<std::string> with_listen(std::vector<std::string> args,
                                              const std::string& admin) {
    for (const char* a : {"--listen", "127.0.0.1:0", "--admin"}) args.push_back(a);
    args.push_back(admin);
    return args;
  }
  TempDir dir_;

 public:
  const std::string admin;
  Server server;
  std::unique_ptr<ProbeBase> probe;
  size_t baseline_kib = 0;
  std::unique_ptr<RssPeak> peak;
};

}  // namespace keel::test::fault
