// Connect rate: each of `concurrency` slots repeatedly connects, round-trips one byte, and
// closes (FIN, waiting for the server's FIN), timing connect start -> echoed byte.
#include <atomic>
#include <memory>
#include <vector>

#include "bench/load.h"
#include "bench/run_loop.h"
#include "keel/net/loop_pool.h"
#include "keel/net/tcp_client.h"

namespace keel::bench {
namespace {

using Clock = std::chrono::steady_clock;

class ConnectWorker {
 public:
  ConnectWorker(EventLoop& loop, const ConnectOptions& o, size_t slots, Clock::time_point end)
      : end_(end) {
    ClientOptions co;
    co.stream = o.stream;
    co.connect_timeout =
        std::chrono::milliseconds(static_cast<int64_t>(o.connect_timeout_s * 1000));
    for (size_t i = 0; i < slots; ++i) {
      auto slot = std::make_unique<Slot>();
      Slot* s = slot.get();
      ConnectionCallbacks cb;
      cb.on_open = [](TcpConnection& c) { c.send(std::string_view("k", 1)); };
      cb.on_data = [this, s](TcpConnection& c, Buffer& in) {
        in.consume_all();
        if (s->got_reply) return;
        s->got_reply = true;
        latency.record(
            static_cast<uint64_t>(std::chrono::nanoseconds(Clock::now() - s->started).count()));
        completed.fetch_add(1, std::memory_order_relaxed);
        c.shutdown();
      };
      cb.on_close = [this, s](TcpConnection&, const CloseReason& r) {
        if (stopping_) return;
        if (!s->got_reply) {
          ++(r.clean() ? errors.closed : errors.reset);
          error_events.fetch_add(1, std::memory_order_relaxed);
        }
        next(*s);
      };
      slot->client = std::make_unique<TcpClient>(
          loop, o.target, co, std::move(cb), [this, s](const CloseReason& r, int, bool) {
            ++(r.kind == CloseReason::Kind::timeout ? errors.timeout : errors.connect);
            error_events.fetch_add(1, std::memory_order_relaxed);
            next(*s);
          });
      slots_.push_back(std::move(slot));
    }
  }

  void start() {
    for (auto& s : slots_) next(*s);
  }
  void stop() {
    stopping_ = true;
    for (auto& s : slots_) s->client->stop();
  }

  std::atomic<uint64_t> completed{0};
  std::atomic<uint64_t> error_events{0};
  LatencyHistogram latency;
  ErrorCounts errors;

 private:
  struct Slot {
    std::unique_ptr<TcpClient> client;
    Clock::time_point started;
    bool got_reply = false;
  };
  void next(Slot& s) {
    if (stopping_ || Clock::now() >= end_) return;
    s.started = Clock::now();
    s.got_reply = false;
    s.client->connect();
  }

  Clock::time_point end_;
  std::vector<std::unique_ptr<Slot>> slots_;
  bool stopping_ = false;
};

}  // namespace

ConnectResult run_connect(const ConnectOptions& o) {
  size_t threads = std::max<size_t>(1, std::min(o.threads, o.concurrency));
  LoopPool pool(threads);
  Clock::time_point start = Clock::now();
  Clock::time_point end = start + to_duration(o.duration_s);
  std::vector<std::unique_ptr<ConnectWorker>> workers;
  for (size_t t = 0; t < threads; ++t) {
    size_t slots = share_of(o.concurrency, threads, t);
    workers.push_back(std::make_unique<ConnectWorker>(pool.loop(t), o, slots, end));
    workers.back()->start();
  }
  double cpu_before = self_cpu_seconds();
  run_until(pool, start, end, o.progress, [&] {
    Progress p;
    for (auto& w : workers) {
      p.done += w->completed.load(std::memory_order_relaxed);
      p.errors += w->error_events.load(std::memory_order_relaxed);
    }
    return p;
  });
  pool.run_on_all_and_wait([&](EventLoop& loop) { workers[loop.index()]->stop(); });
  pool.stop();

  ConnectResult r;
  r.client_cpu_s = self_cpu_seconds() - cpu_before;
  r.measured_s = o.duration_s;
  for (auto& w : workers) {
    r.completed += w->completed.load();
    r.latency_ns.merge(w->latency);
    r.errors += w->errors;
  }
  return r;
}

}  // namespace keel::bench
