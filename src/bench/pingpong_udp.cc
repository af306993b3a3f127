// Ping-pong over UDP: each of `conns` client sockets keeps `pipeline` datagrams in flight
// (closed loop), or the sockets share the fixed-rate schedule (open loop). Every datagram starts
// with its 8-byte sequence number, so a reply is matched whatever order it comes back in. A
// datagram with no reply within the reply timeout is lost: counted, and in closed loop its slot
// is refilled at once, so a loss costs one timeout, never the run.
//
// Counting: a datagram belongs to the measured window when it was sent (or, at a fixed rate,
// due) inside it. After the window the run waits up to one reply timeout for the window's
// last replies, so sent == messages + lost.
#include <algorithm>
#include <atomic>
#include <cstring>
#include <deque>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "bench/load.h"
#include "bench/run_loop.h"
#include "bench/schedule.h"
#include "keel/error.h"
#include "keel/net/loop_pool.h"
#include "keel/net/udp_socket.h"

namespace keel::bench {
namespace {

using Clock = std::chrono::steady_clock;
constexpr size_t kSeqBytes = sizeof(uint64_t);

// One per loop thread; owns that loop's sockets. Loop-thread only once the pool runs.
class UdpPingpongWorker {
 public:
  UdpPingpongWorker(EventLoop& loop, const PingpongOptions& o, size_t sockets,
                    Clock::time_point start, Clock::time_point measure_from, Clock::time_point end,
                    size_t threads)
      : loop_(loop), o_(o), payload_(o.size, 'k'), measure_from_(measure_from), end_(end) {
    UdpSocketOptions so;
    so.max_datagram_bytes = o.size + 1;  // a longer reply is not our echo: truncated, lost
    so.batch = 16;
    Endpoint any = Endpoint::parse(o.target.is_ipv6() ? "udp:[::]:0" : "udp:0.0.0.0:0");
    for (size_t i = 0; i < sockets; ++i) {
      auto c = std::make_unique<Client>();
      c->worker = this;
      c->socket = std::make_unique<UdpSocket>(loop, any, *c, so);
      clients_.push_back(std::move(c));
    }
    if (o.rate > 0) schedule_ = std::make_unique<RateSchedule>(start, o.rate / threads);
  }

  void start() {
    for (auto& c : clients_) c->socket->start();
    if (schedule_) {
      tick_ = loop_.run_every(std::chrono::milliseconds(1), [this] { send_due(); });
    } else {
      Clock::time_point now = Clock::now();
      for (auto& c : clients_)
        for (size_t i = 0; i < o_.pipeline; ++i) send(*c, now);
    }
    auto every = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::duration<double>(o_.reply_timeout_s / 10));
    every = std::clamp(every, std::chrono::milliseconds(1), std::chrono::milliseconds(100));
    check_ = loop_.run_every(every, [this] { expire(Clock::now()); });
  }

  // After the drain: what is still in flight from the window is lost.
  void stop() {
    if (tick_) loop_.cancel_timer(tick_);
    if (check_) loop_.cancel_timer(check_);
    expire(Clock::time_point::max());
    for (auto& c : clients_) c->socket->stop();
  }

  std::atomic<uint64_t> messages{0};  // replies to datagrams of the window
  std::atomic<uint64_t> sent{0};      // datagrams of the window
  std::atomic<uint64_t> lost{0};
  std::atomic<uint64_t> waiting{0};  // datagrams of the window still in flight
  LatencyHistogram latency;

 private:
  struct InFlight {
    uint64_t seq;
    Clock::time_point at;  // sent (or due, at a fixed rate)
    bool in_window;
  };
  struct Client final : DatagramService {
    UdpPingpongWorker* worker = nullptr;
    std::unique_ptr<UdpSocket> socket;
    std::deque<InFlight> inflight;  // in send order: the oldest is first
    uint64_t next_seq = 0;
    const char* name() const noexcept override { return "pingpong"; }
    void on_datagram(DatagramSender&, const Endpoint&, std::string_view bytes) override {
      worker->on_reply(*this, bytes);
    }
  };

  static void bump(std::atomic<uint64_t>& a, int64_t n) {
    a.store(a.load(std::memory_order_relaxed) + static_cast<uint64_t>(n),
            std::memory_order_relaxed);
  }

  bool in_window(Clock::time_point t) const { return t >= measure_from_ && t < end_; }

  void send(Client& c, Clock::time_point at) {
    uint64_t seq = c.next_seq++;
    std::memcpy(payload_.data(), &seq, kSeqBytes);
    bool counted = in_window(at);
    c.inflight.push_back({seq, at, counted});
    if (counted) {
      bump(sent, 1);
      bump(waiting, 1);
    }
    // A datagram the kernel drops is never answered: it times out and counts as lost.
    c.socket->send_to(o_.target, payload_);
  }

  void on_reply(Client& c, std::string_view bytes) {
    if (bytes.size() != o_.size) return;  // not our echo
    uint64_t seq;
    std::memcpy(&seq, bytes.data(), kSeqBytes);
    auto it = std::find_if(c.inflight.begin(), c.inflight.end(),
                           [seq](const InFlight& f) { return f.seq == seq; });
    if (it == c.inflight.end()) return;  // late (already counted lost) or duplicated
    Clock::time_point now = Clock::now();
    if (it->in_window) {
      latency.record(static_cast<uint64_t>(std::chrono::nanoseconds(now - it->at).count()));
      bump(messages, 1);
      bump(waiting, -1);
    }
    c.inflight.erase(it);
    if (!schedule_ && now < end_) send(c, now);
  }

  // Everything sent before deadline - reply timeout without a reply is lost.
  void expire(Clock::time_point now) {
    auto limit = std::chrono::duration_cast<Clock::duration>(
        std::chrono::duration<double>(o_.reply_timeout_s));
    for (auto& c : clients_) {
      size_t refill = 0;
      while (!c->inflight.empty() &&
             (now == Clock::time_point::max() || now - c->inflight.front().at >= limit)) {
        if (c->inflight.front().in_window) {
          bump(lost, 1);
          bump(waiting, -1);
        }
        c->inflight.pop_front();
        ++refill;
      }
      if (schedule_ || now >= end_) continue;
      for (size_t i = 0; i < refill; ++i) send(*c, now);
    }
  }

  // Fixed rate: hand each due datagram to the next socket, round robin.
  void send_due() {
    Clock::time_point now = Clock::now();
    if (now >= end_) return;
    uint64_t due = schedule_->due(now);
    for (uint64_t i = 0; i < due; ++i)
      send(*clients_[rr_++ % clients_.size()], schedule_->next_intended());
  }

  EventLoop& loop_;
  const PingpongOptions& o_;
  std::string payload_;
  Clock::time_point measure_from_, end_;
  std::vector<std::unique_ptr<Client>> clients_;
  std::unique_ptr<RateSchedule> schedule_;
  TimerId tick_ = 0, check_ = 0;
  size_t rr_ = 0;
};

}  // namespace

PingpongResult run_pingpong_udp(const PingpongOptions& o) {
  if (o.size < kSeqBytes || o.size > 65507)
    throw Error("pingpong " + o.target.to_string() +
                ": --size must be 8 to 65507 bytes over UDP (a datagram carries its sequence "
                "number)");
  size_t threads = std::max<size_t>(1, std::min(o.threads, o.conns));
  LoopPool pool(threads);
  Clock::time_point start = Clock::now();
  Clock::time_point measure_from = start + to_duration(o.warmup_s);
  Clock::time_point end = measure_from + to_duration(o.duration_s);
  std::vector<std::unique_ptr<UdpPingpongWorker>> workers;
  for (size_t t = 0; t < threads; ++t) {
    size_t sockets = share_of(o.conns, threads, t);
    workers.push_back(std::make_unique<UdpPingpongWorker>(pool.loop(t), o, sockets, start,
                                                          measure_from, end, threads));
    workers.back()->start();
  }
  double cpu_before = self_cpu_seconds();
  run_until(pool, start, end, o.progress, [&] {
    Progress p;
    for (auto& w : workers) {
      p.done += w->messages.load(std::memory_order_relaxed);
      p.errors += w->lost.load(std::memory_order_relaxed);
    }
    return p;
  });
  // The window's last replies: wait for them up to one reply timeout.
  auto drain_until = Clock::now() + to_duration(o.reply_timeout_s);
  auto waiting = [&] {
    uint64_t n = 0;
    for (auto& w : workers) n += w->waiting.load(std::memory_order_relaxed);
    return n;
  };
  while (waiting() > 0 && Clock::now() < drain_until)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  pool.run_on_all_and_wait([&](EventLoop& loop) { workers[loop.index()]->stop(); });
  pool.stop();

  PingpongResult r;
  r.client_cpu_s = self_cpu_seconds() - cpu_before;
  r.measured_s = o.duration_s;
  r.connected = o.conns;
  for (auto& w : workers) {
    r.messages += w->messages.load();
    r.sent += w->sent.load();
    r.lost += w->lost.load();
    r.latency_ns.merge(w->latency);
  }
  return r;
}

}  // namespace keel::bench
