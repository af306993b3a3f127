// Ping-pong: each connection sends a block and waits for all of it to come back (closed loop,
// `pipeline` blocks in flight), or sends on a fixed-rate schedule (open loop).
#include <atomic>
#include <deque>
#include <memory>
#include <thread>
#include <vector>

#include "bench/load.h"
#include "bench/run_loop.h"
#include "bench/schedule.h"
#include "keel/net/loop_pool.h"
#include "keel/net/tcp_client.h"

namespace keel::bench {
namespace {

using Clock = std::chrono::steady_clock;

// One per loop thread; owns that loop's connections. Loop-thread only once the pool runs.
class PingpongWorker {
 public:
  PingpongWorker(EventLoop& loop, const PingpongOptions& o, size_t conns, Clock::time_point start,
                 Clock::time_point measure_from, Clock::time_point end, size_t threads)
      : loop_(loop), o_(o), payload_(o.size, 'k'), measure_from_(measure_from), end_(end) {
    ClientOptions co;
    co.stream = o.stream;
    co.connect_timeout = std::chrono::milliseconds(5000);
    co.high_water_bytes = SIZE_MAX;  // the generator bounds itself by pipeline or rate
    ConnectionCallbacks cb;
    cb.on_open = [this](TcpConnection& c) { on_open(c); };
    cb.on_data = [this](TcpConnection& c, Buffer& in) { on_data(c, in); };
    cb.on_close = [this](TcpConnection& c, const CloseReason& r) { on_close(c, r); };
    for (size_t i = 0; i < conns; ++i) {
      states_.push_back(std::make_unique<ConnState>());
      states_.back()->client = std::make_unique<TcpClient>(
          loop, o.target, co, cb, [this](const CloseReason&, int, bool) {
            ++errors_.connect;
            error_events.fetch_add(1, std::memory_order_relaxed);
          });
    }
    if (o.rate > 0) schedule_ = std::make_unique<RateSchedule>(start, o.rate / threads);
  }

  void start() {
    for (auto& s : states_) s->client->connect();
    if (schedule_) tick_ = loop_.run_every(std::chrono::milliseconds(1), [this] { send_due(); });
    check_ = loop_.run_every(std::chrono::milliseconds(100), [this] { check_timeouts(); });
  }

  void stop() {
    stopping_ = true;
    if (tick_) loop_.cancel_timer(tick_);
    if (check_) loop_.cancel_timer(check_);
    for (auto& s : states_) s->client->stop();
  }

  std::atomic<uint64_t> messages{0};
  std::atomic<uint64_t> error_events{0};
  LatencyHistogram latency;
  ErrorCounts errors_;
  size_t connected = 0;

 private:
  struct ConnState {
    std::unique_ptr<TcpClient> client;
    std::deque<Clock::time_point> inflight;  // send (or intended send) time of each block
    size_t partial = 0;                      // bytes of the oldest block received so far
    bool timed_out = false;
  };

  void send_block(TcpConnection& c, ConnState& s, Clock::time_point at) {
    s.inflight.push_back(at);
    c.send(payload_);
  }

  void on_open(TcpConnection& c) {
    size_t index = next_tag_++;
    c.set_user_tag(index);
    ++connected;
    if (schedule_) return;
    Clock::time_point now = Clock::now();
    for (size_t i = 0; i < o_.pipeline; ++i) send_block(c, *states_[index], now);
  }

  void on_data(TcpConnection& c, Buffer& in) {
    ConnState& s = *states_[c.user_tag()];
    size_t n = in.readable_bytes();
    in.consume_all();
    s.partial += n;
    Clock::time_point now = Clock::now();
    bool measuring = now >= measure_from_ && now <= end_;
    while (s.partial >= o_.size && !s.inflight.empty()) {
      s.partial -= o_.size;
      Clock::time_point sent = s.inflight.front();
      s.inflight.pop_front();
      if (measuring) {
        latency.record(static_cast<uint64_t>(std::chrono::nanoseconds(now - sent).count()));
        messages.fetch_add(1, std::memory_order_relaxed);
      }
      if (!schedule_ && now < end_) send_block(c, s, now);
    }
  }

  void on_close(TcpConnection&, const CloseReason& reason) {
    if (stopping_ || reason.kind == CloseReason::Kind::local) return;  // local: a reply timeout
    ++(reason.clean() ? errors_.closed : errors_.reset);
    error_events.fetch_add(1, std::memory_order_relaxed);
  }

  // Fixed rate: hand each due message to the next open connection, round robin.
  void send_due() {
    Clock::time_point now = Clock::now();
    if (now >= end_) return;
    uint64_t due = schedule_->due(now);
    for (uint64_t i = 0; i < due; ++i) {
      Clock::time_point intended = schedule_->next_intended();
      for (size_t tries = 0; tries < states_.size(); ++tries) {
        ConnState& s = *states_[rr_++ % states_.size()];
        TcpConnection* c = loop_.find(s.client->connection());
        if (c && c->state() == ConnectionState::open) {
          send_block(*c, s, intended);
          break;
        }
      }
    }
  }

  void check_timeouts() {
    auto limit = std::chrono::duration<double>(o_.reply_timeout_s);
    Clock::time_point now = Clock::now();
    for (auto& s : states_) {
      if (s->timed_out || s->inflight.empty() || now - s->inflight.front() < limit) continue;
      s->timed_out = true;
      ++errors_.timeout;
      error_events.fetch_add(1, std::memory_order_relaxed);
      if (TcpConnection* c = loop_.find(s->client->connection())) c->force_close("reply timeout");
    }
  }

  EventLoop& loop_;
  const PingpongOptions& o_;
  std::string payload_;
  Clock::time_point measure_from_, end_;
  std::vector<std::unique_ptr<ConnState>> states_;
  std::unique_ptr<RateSchedule> schedule_;
  TimerId tick_ = 0, check_ = 0;
  size_t next_tag_ = 0;
  size_t rr_ = 0;
  bool stopping_ = false;
};

}  // namespace

PingpongResult run_pingpong(const PingpongOptions& o) {
  if (o.target.is_udp()) return run_pingpong_udp(o);
  size_t threads = std::max<size_t>(1, std::min(o.threads, o.conns));
  LoopPool pool(threads);
  Clock::time_point start = Clock::now();
  Clock::time_point measure_from = start + to_duration(o.warmup_s);
  Clock::time_point end = measure_from + to_duration(o.duration_s);
  std::vector<std::unique_ptr<PingpongWorker>> workers;
  for (size_t t = 0; t < threads; ++t) {
    size_t conns = share_of(o.conns, threads, t);
    workers.push_back(std::make_unique<PingpongWorker>(pool.loop(t), o, conns, start, measure_from,
                                                       end, threads));
    workers.back()->start();
  }
  double cpu_before = self_cpu_seconds();
  run_until(pool, start, end, o.progress, [&] {
    Progress p;
    for (auto& w : workers) {
      p.done += w->messages.load(std::memory_order_relaxed);
      p.errors += w->error_events.load(std::memory_order_relaxed);
    }
    return p;
  });
  pool.run_on_all_and_wait([&](EventLoop& loop) { workers[loop.index()]->stop(); });
  pool.stop();

  PingpongResult r;
  r.client_cpu_s = self_cpu_seconds() - cpu_before;
  r.measured_s = o.duration_s;
  for (auto& w : workers) {
    r.messages += w->messages.load();
    r.latency_ns.merge(w->latency);
    r.errors += w->errors_;
    r.connected += w->connected;
  }
  return r;
}

}  // namespace keel::bench
