// Idle: open N connections (at most max_connecting at a time), hold them, then check every one
// still echoes a byte. Reports the server's RSS before and after opening when given its pid.
#include <sys/resource.h>

#include <atomic>
#include <cmath>
#include <fstream>
#include <memory>
#include <thread>
#include <vector>

#include "bench/load.h"
#include "bench/run_loop.h"
#include "keel/net/loop_pool.h"
#include "keel/net/tcp_client.h"

namespace keel::bench {

long process_rss_kib(int pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line))
    if (line.starts_with("VmRSS:")) return std::stol(line.substr(6));
  return -1;
}

double self_cpu_seconds() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec +
         (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

namespace {

using Clock = std::chrono::steady_clock;

size_t ephemeral_port_count() {
  std::ifstream f("/proc/sys/net/ipv4/ip_local_port_range");
  size_t lo = 32768, hi = 60999;
  f >> lo >> hi;
  return hi >= lo ? hi - lo + 1 : 28232;
}

class IdleWorker {
 public:
  IdleWorker(EventLoop& loop, const IdleOptions& o, size_t conns, size_t first_index,
             size_t sources)
      : loop_(loop), max_connecting_(o.max_connecting) {
    ConnectionCallbacks cb;
    cb.on_open = [this](TcpConnection&) {
      opened.fetch_add(1, std::memory_order_relaxed);
      --connecting_;
      start_more();
    };
    cb.on_data = [this](TcpConnection& c, Buffer& in) {
      in.consume_all();
      if (verifying_ && c.user_tag() == 0) {
        c.set_user_tag(1);
        alive.fetch_add(1, std::memory_order_relaxed);
      }
    };
    cb.on_close = [this](TcpConnection& c, const CloseReason&) {
      if (!stopping_ && c.user_tag() == 0) lost.fetch_add(1, std::memory_order_relaxed);
    };
    for (size_t i = 0; i < conns; ++i) {
      ClientOptions co;
      co.stream = o.stream;
      co.connect_timeout =
          std::chrono::milliseconds(static_cast<int64_t>(o.connect_timeout_s * 1000));
      size_t source = (first_index + i) % sources;
      if (sources > 1) co.bind_to = Endpoint::parse("127.0.0." + std::to_string(1 + source) + ":0");
      clients_.push_back(std::make_unique<TcpClient>(
          loop, o.target, co, cb, [this](const CloseReason&, int, bool) {
            failed.fetch_add(1, std::memory_order_relaxed);
            --connecting_;
            start_more();
          }));
    }
  }

  void start() { start_more(); }

  // Sends one byte on every open connection; replies count as alive.
  void verify() {
    verifying_ = true;
    for (auto& client : clients_)
      if (TcpConnection* c = loop_.find(client->connection())) c->send(std::string_view("k", 1));
  }

  void stop() {
    stopping_ = true;
    for (auto& client : clients_) client->stop();
  }

  std::atomic<size_t> opened{0}, failed{0}, alive{0}, lost{0};

 private:
  void start_more() {
    while (connecting_ < max_connecting_ && next_ < clients_.size()) {
      ++connecting_;
      clients_[next_++]->connect();
    }
  }

  EventLoop& loop_;
  size_t max_connecting_;
  std::vector<std::unique_ptr<TcpClient>> clients_;
  size_t next_ = 0;
  size_t connecting_ = 0;
  bool verifying_ = false;
  bool stopping_ = false;
};

}  // namespace

IdleResult run_idle(const IdleOptions& o) {
  IdleResult r;
  size_t threads = std::max<size_t>(1, std::min(o.threads, o.conns));
  // Each source address can use most of the ephemeral range towards one server port.
  size_t per_source = ephemeral_port_count() * 8 / 10;
  bool loopback_v4 =
      !o.target.is_unix() && !o.target.is_ipv6() && o.target.to_string().starts_with("127.");
  r.source_addresses =
      loopback_v4 ? std::max<size_t>(1, (o.conns + per_source - 1) / per_source) : 1;
  if (o.server_pid) r.server_rss_before_kib = process_rss_kib(o.server_pid);

  LoopPool pool(threads);
  std::vector<std::unique_ptr<IdleWorker>> workers;
  size_t first = 0;
  for (size_t t = 0; t < threads; ++t) {
    size_t conns = share_of(o.conns, threads, t);
    workers.push_back(
        std::make_unique<IdleWorker>(pool.loop(t), o, conns, first, r.source_addresses));
    workers.back()->start();
    first += conns;
  }
  auto sum = [&](auto member) {
    size_t n = 0;
    for (auto& w : workers) n += (w.get()->*member).load(std::memory_order_relaxed);
    return n;
  };
  double cpu_before = self_cpu_seconds();
  Clock::time_point start = Clock::now();
  // Opening: bounded by the connect timeout per wave; give it generous but finite time.
  double open_budget_s = o.connect_timeout_s + static_cast<double>(o.conns) / 500.0;
  run_until(
      pool, start, start + to_duration(open_budget_s), o.progress,
      [&] {
        return Progress{0, sum(&IdleWorker::opened), sum(&IdleWorker::failed)};
      },
      [&] { return sum(&IdleWorker::opened) + sum(&IdleWorker::failed) >= o.conns; });
  r.opened = sum(&IdleWorker::opened);

  Clock::time_point hold_end = Clock::now() + to_duration(o.hold_s);
  std::this_thread::sleep_until(hold_end);
  if (o.server_pid) r.server_rss_after_kib = process_rss_kib(o.server_pid);

  pool.run_on_all_and_wait([&](EventLoop& loop) { workers[loop.index()]->verify(); });
  Clock::time_point verify_end = Clock::now() + std::chrono::seconds(10);
  while (Clock::now() < verify_end && sum(&IdleWorker::alive) + sum(&IdleWorker::lost) < r.opened)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  r.alive = sum(&IdleWorker::alive);
  pool.run_on_all_and_wait([&](EventLoop& loop) { workers[loop.index()]->stop(); });
  pool.stop();
  r.failed = o.conns - r.alive;
  r.client_cpu_s = self_cpu_seconds() - cpu_before;
  return r;
}

}  // namespace keel::bench
