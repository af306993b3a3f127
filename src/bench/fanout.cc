// Fan-out: `members` chat clients join one room; the first `senders` of them send timestamped
// lines ("t <send time ns>") in a closed loop. Every member records the delivery latency of
// every line it receives (steady_clock is CLOCK_MONOTONIC, shared by processes on one host).
// With more targets (the nodes of a chat cluster), member i connects to node i mod nodes.
#include <unistd.h>

#include <atomic>
#include <charconv>
#include <memory>
#include <thread>
#include <vector>

#include "bench/load.h"
#include "bench/run_loop.h"
#include "keel/net/loop_pool.h"
#include "keel/net/tcp_client.h"
#include "services/chat/framing.h"

namespace keel::bench {
namespace {

using Clock = std::chrono::steady_clock;

uint64_t now_ns() {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
          .count());
}

class FanoutWorker {
 public:
  FanoutWorker(EventLoop& loop, const FanoutOptions& o, size_t first, size_t count)
      : loop_(loop), o_(o) {
    ConnectionCallbacks cb;
    cb.on_data = [this](TcpConnection& c, Buffer& in) { on_data(c, in); };
    cb.on_close = [this](TcpConnection&, const CloseReason& r) {
      if (stopping_) return;
      ++(r.clean() ? errors.closed : errors.reset);
    };
    ClientOptions co;
    co.stream = o.stream;
    co.high_water_bytes = SIZE_MAX;
    std::string tag = std::to_string(::getpid() % 100000);
    for (size_t i = 0; i < count; ++i) {
      auto m = std::make_unique<Member>();
      m->index = i;
      m->sender = first + i < o.senders;
      m->nick = "b" + std::to_string(first + i) + "-" + tag;
      m->own_prefix = "<" + m->nick + "> t ";
      m->joined_line = "* " + m->nick + " joined " + o.room;
      ConnectionCallbacks mine = cb;  // on_open knows which member it is
      mine.on_open = [this, i](TcpConnection& c) {
        c.set_user_tag(i);
        c.send("/nick " + members_[i]->nick + "\n/join " + o_.room + "\n");
      };
      const size_t node = (first + i) % (1 + o.more_targets.size());
      const Endpoint& target = node == 0 ? o.target : o.more_targets[node - 1];
      m->client =
          std::make_unique<TcpClient>(loop, target, co, std::move(mine),
                                      [this](const CloseReason&, int, bool) { ++errors.connect; });
      members_.push_back(std::move(m));
    }
  }

  void start() {
    for (auto& m : members_) m->client->connect();
  }
  // Loop thread: senders send their first message; measuring runs [from, end).
  void go(Clock::time_point from, Clock::time_point end) {
    measure_from_ = from;
    end_ = end;
    going_ = true;
    for (auto& m : members_)
      if (m->sender) send_next(*m);
  }
  void stop() {
    stopping_ = true;
    for (auto& m : members_) m->client->stop();
  }

  std::atomic<size_t> joined{0};
  std::atomic<uint64_t> deliveries{0};
  uint64_t sent = 0;
  LatencyHistogram latency;
  ErrorCounts errors;

 private:
  struct Member {
    size_t index = 0;
    bool sender = false;
    std::string nick, own_prefix, joined_line;
    std::unique_ptr<TcpClient> client;
  };

  void send_next(Member& m) {
    TcpConnection* c = loop_.find(m.client->connection());
    if (!c || Clock::now() >= end_) return;
    if (Clock::now() >= measure_from_) ++sent;
    c->send("t " + std::to_string(now_ns()) + "\n");
  }

  void on_data(TcpConnection& c, Buffer& in) {
    Member& m = *members_[c.user_tag()];
    std::string line;
    Clock::time_point now = Clock::now();
    uint64_t t_now = now_ns();
    while (chat::decode(chat::Framing::lines, in, 64 * 1024, line) == chat::DecodeStatus::message) {
      if (line.starts_with('<')) {
        size_t at = line.find("> t ");
        if (at == std::string::npos) continue;
        uint64_t sent_ns = 0;
        const char* p = line.data() + at + 4;
        std::from_chars(p, line.data() + line.size(), sent_ns);
        if (going_ && now >= measure_from_ && now < end_) {
          latency.record(t_now > sent_ns ? t_now - sent_ns : 0);
          deliveries.fetch_add(1, std::memory_order_relaxed);
        }
        if (m.sender && going_ && line.starts_with(m.own_prefix)) send_next(m);
      } else if (line == m.joined_line) {
        joined.fetch_add(1, std::memory_order_relaxed);
      }
    }
  }

  EventLoop& loop_;
  const FanoutOptions& o_;
  std::vector<std::unique_ptr<Member>> members_;
  Clock::time_point measure_from_{}, end_{};
  bool going_ = false;
  bool stopping_ = false;
};

}  // namespace

FanoutResult run_fanout(const FanoutOptions& o) {
  size_t threads = std::max<size_t>(1, std::min(o.threads, o.members));
  LoopPool pool(threads);
  std::vector<std::unique_ptr<FanoutWorker>> workers;
  size_t first = 0;
  for (size_t t = 0; t < threads; ++t) {
    size_t count = share_of(o.members, threads, t);
    workers.push_back(std::make_unique<FanoutWorker>(pool.loop(t), o, first, count));
    workers.back()->start();
    first += count;
  }
  auto joined = [&] {
    size_t n = 0;
    for (auto& w : workers) n += w->joined.load(std::memory_order_relaxed);
    return n;
  };
  Clock::time_point start = Clock::now();
  run_until(
      pool, start, start + to_duration(o.join_timeout_s), o.progress,
      [&] {
        return Progress{0, joined(), 0};
      },
      [&] { return joined() >= o.members; });
  FanoutResult r;
  r.joined = joined();

  double cpu_before = self_cpu_seconds();
  Clock::time_point go = Clock::now();
  Clock::time_point from = go + to_duration(o.warmup_s);
  Clock::time_point end = from + to_duration(o.duration_s);
  pool.run_on_all_and_wait([&](EventLoop& loop) { workers[loop.index()]->go(from, end); });
  auto deliveries = [&] {
    uint64_t n = 0;
    for (auto& w : workers) n += w->deliveries.load(std::memory_order_relaxed);
    return n;
  };
  while (Clock::now() < end)
    std::this_thread::sleep_until(std::min(end, Clock::now() + std::chrono::seconds(1)));
  if (o.progress)
    o.progress(Progress{std::chrono::duration<double>(Clock::now() - go).count(), deliveries(), 0});
  pool.run_on_all_and_wait([&](EventLoop& loop) { workers[loop.index()]->stop(); });
  pool.stop();

  r.client_cpu_s = self_cpu_seconds() - cpu_before;
  r.measured_s = o.duration_s;
  for (auto& w : workers) {
    r.deliveries += w->deliveries.load();
    r.sent += w->sent;
    r.latency_ns.merge(w->latency);
    r.errors += w->errors;
  }
  return r;
}

}  // namespace keel::bench
