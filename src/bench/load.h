// keel bench: load generators that drive any echo-compatible server (TCP or Unix; pingpong also
// UDP) with libkeel's own loops, TcpClient and UdpSocket. Each mode runs to completion and
// returns its result; the CLI formats.
// Thread safety: each run_* call owns its loops; call from one thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

#include "bench/histogram.h"
#include "keel/net/endpoint.h"
#include "keel/net/stream.h"

namespace keel::bench {

struct ErrorCounts {
  uint64_t connect = 0;  // connection attempts that failed (refused, unreachable, timed out)
  uint64_t reset = 0;    // established connections reset or failed
  uint64_t timeout = 0;  // a reply took longer than the reply timeout
  uint64_t closed = 0;   // the server closed a connection during the run
  uint64_t total() const { return connect + reset + timeout + closed; }
  ErrorCounts& operator+=(const ErrorCounts& o) {
    connect += o.connect;
    reset += o.reset;
    timeout += o.timeout;
    closed += o.closed;
    return *this;
  }
};

// Live figures for a progress display, sampled about once a second.
struct Progress {
  double elapsed_s = 0;
  uint64_t done = 0;  // messages, connections, ... so far
  uint64_t errors = 0;
};
using ProgressFn = std::function<void(const Progress&)>;

struct PingpongOptions {
  Endpoint target;       // a udp: target runs run_pingpong_udp: conns are UDP sockets
  StreamOptions stream;  // TLS (a client stream factory), else plain
  size_t conns = 1;
  size_t size = 64;
  size_t pipeline = 1;  // messages in flight per connection (closed loop)
  size_t threads = 1;
  double duration_s = 5;
  double warmup_s = 0;         // run this long before measuring
  double rate = 0;             // total messages/s; 0 = closed loop (send the next when one returns)
  double reply_timeout_s = 5;  // UDP: a datagram without a reply by then is lost
  ProgressFn progress;
};

struct PingpongResult {
  uint64_t messages = 0;  // completed round trips inside the measured window
  double measured_s = 0;
  LatencyHistogram latency_ns;
  ErrorCounts errors;
  size_t connected = 0;  // connections that were established
  double client_cpu_s = 0;
  // UDP only: datagrams sent in the measured window, and those of them never answered within
  // the reply timeout; sent == messages + lost.
  uint64_t sent = 0;
  uint64_t lost = 0;
  double msgs_per_s() const { return measured_s > 0 ? messages / measured_s : 0; }
};

// For a udp: target, run_pingpong_udp (src/bench/pingpong_udp.cc). Throws Error on set-up.
PingpongResult run_pingpong(const PingpongOptions& options);
PingpongResult run_pingpong_udp(const PingpongOptions& options);

struct ConnectOptions {
  Endpoint target;
  StreamOptions stream;  // TLS (a client stream factory), else plain
  size_t concurrency = 1;
  size_t threads = 1;
  double duration_s = 5;
  double connect_timeout_s = 5;
  ProgressFn progress;
};

struct ConnectResult {
  uint64_t completed = 0;  // connect + 1-byte round trip + close
  double measured_s = 0;
  LatencyHistogram latency_ns;  // from starting the connect to receiving the echoed byte
  ErrorCounts errors;
  double client_cpu_s = 0;
  double conns_per_s() const { return measured_s > 0 ? completed / measured_s : 0; }
};

ConnectResult run_connect(const ConnectOptions& options);

struct IdleOptions {
  Endpoint target;
  StreamOptions stream;  // TLS (a client stream factory), else plain
  size_t conns = 100;
  double hold_s = 5;
  size_t threads = 1;
  size_t max_connecting = 256;  // connects in flight at once
  int server_pid = 0;           // report this process's RSS when set
  double connect_timeout_s = 10;
  ProgressFn progress;
};

struct IdleResult {
  size_t opened = 0;
  size_t alive = 0;  // still echoing after the hold
  size_t failed = 0;
  size_t source_addresses = 1;
  long server_rss_before_kib = -1;  // -1: not measured
  long server_rss_after_kib = -1;
  double client_cpu_s = 0;
};

IdleResult run_idle(const IdleOptions& options);

struct FanoutOptions {
  Endpoint target;  // a keel chat server (line framing)
  // More nodes of a chat cluster (--redis): members are spread round-robin over target and
  // these, so each line crosses nodes on its way to most members.
  std::vector<Endpoint> more_targets;
  StreamOptions stream;  // TLS (a client stream factory), else plain
  size_t members = 100;
  size_t senders = 1;  // the first `senders` members also send (closed loop: the next message
                       // goes when the sender sees its previous one come back)
  size_t threads = 1;
  double duration_s = 5;
  double warmup_s = 0;
  std::string room = "#bench";
  double join_timeout_s = 30;
  ProgressFn progress;
};

struct FanoutResult {
  size_t joined = 0;
  uint64_t sent = 0;        // messages sent inside the measured window
  uint64_t deliveries = 0;  // messages received by members inside the window
  double measured_s = 0;
  LatencyHistogram latency_ns;  // from the sender's send to a member's receipt
  ErrorCounts errors;
  double client_cpu_s = 0;
  double deliveries_per_s() const { return measured_s > 0 ? deliveries / measured_s : 0; }
};

// Fan-out through a chat room: deliveries/s and delivery latency.
FanoutResult run_fanout(const FanoutOptions& options);

// VmRSS of a process in KiB, or -1.
long process_rss_kib(int pid);
// User + system CPU seconds of this process so far.
double self_cpu_seconds();

}  // namespace keel::bench
