// keel bench pingpong | connect | idle: load generators against any echo-compatible server.
#include <fmt/format.h>
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <string>

#include "bench/load.h"
#include "cli/client_tls.h"
#include "cli/commands.h"
#include "cli/validators.h"
#include "keel/error.h"

namespace keel::cli {
namespace {

using bench::ErrorCounts;
using bench::LatencyHistogram;

struct CommonFlags {
  std::string target;
  size_t threads = 1;
  double duration_s = 5;
  bool json = false;
  ClientTlsFlags tls;
};

bench::ProgressFn progress_line(const CommonFlags& f, const char* unit) {
  if (f.json || !::isatty(STDOUT_FILENO)) return {};
  return [unit, last = uint64_t{0}, last_t = 0.0](const bench::Progress& p) mutable {
    double rate = p.elapsed_s > last_t ? (p.done - last) / (p.elapsed_s - last_t) : 0;
    std::printf("\r\033[K  %5.1f s  %12llu %s  %12.0f /s  errors %llu", p.elapsed_s,
                static_cast<unsigned long long>(p.done), unit, rate,
                static_cast<unsigned long long>(p.errors));
    std::fflush(stdout);
    last = p.done;
    last_t = p.elapsed_s;
  };
}

void end_progress(const CommonFlags& f) {
  if (!f.json && ::isatty(STDOUT_FILENO)) std::printf("\r\033[K");
}

std::string us(uint64_t ns) {
  return fmt::format("{:.1f}", ns / 1000.0);
}

std::string latency_json(const LatencyHistogram& h) {
  return fmt::format(R"({{"p50":{},"p90":{},"p99":{},"p999":{},"max":{},"mean":{:.1f}}})",
                     us(h.percentile(50)), us(h.percentile(90)), us(h.percentile(99)),
                     us(h.percentile(99.9)), us(h.max()), h.mean() / 1000.0);
}

std::string errors_json(const ErrorCounts& e) {
  return fmt::format(R"({{"connect":{},"reset":{},"timeout":{},"closed":{}}})", e.connect, e.reset,
                     e.timeout, e.closed);
}

std::string human_duration(uint64_t ns) {
  if (ns < 1000) return fmt::format("{} ns", ns);
  if (ns < 1000000) return fmt::format("{:.1f} us", ns / 1e3);
  if (ns < 1000000000) return fmt::format("{:.2f} ms", ns / 1e6);
  return fmt::format("{:.2f} s", ns / 1e9);
}

void print_latency(const char* label, const LatencyHistogram& h) {
  std::printf("  %-9s p50 %s  p90 %s  p99 %s  p99.9 %s  max %s\n", label,
              human_duration(h.percentile(50)).c_str(), human_duration(h.percentile(90)).c_str(),
              human_duration(h.percentile(99)).c_str(), human_duration(h.percentile(99.9)).c_str(),
              human_duration(h.max()).c_str());
}

void print_errors(const ErrorCounts& e) {
  if (e.total() == 0) {
    std::printf("  errors    none\n");
    return;
  }
  std::printf("  errors    connect %llu  reset %llu  timeout %llu  closed by server %llu\n",
              static_cast<unsigned long long>(e.connect), static_cast<unsigned long long>(e.reset),
              static_cast<unsigned long long>(e.timeout),
              static_cast<unsigned long long>(e.closed));
}

// A run that could not do anything at all is a failure for scripts; partial errors are data.
int exit_code_for(uint64_t done, const ErrorCounts& e) {
  return done == 0 && e.total() > 0 ? kExitFailure : kExitOk;
}

void add_common(CLI::App& cmd, CommonFlags& f, bool with_duration) {
  cmd.add_option("endpoint", f.target, "Server: HOST:PORT, [IPv6]:PORT or unix:/path")->required();
  cmd.add_option("-t,--threads", f.threads, "Load-generator threads")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
  if (with_duration)
    cmd.add_option("-d,--duration", f.duration_s, "Seconds to measure")
        ->check(FiniteRange(0.1, 86400.0))
        ->capture_default_str();
  cmd.add_flag("--json", f.json, "Print one JSON object instead of text");
  add_client_tls_flags(cmd, f.tls);
}

// --tls: each connection's client stream (the handshake counts as part of connecting).
StreamOptions client_stream(const CommonFlags& f, const Endpoint& target) {
  StreamOptions s;
  if (f.tls.tls && target.is_udp()) throw Error("--tls: " + target.to_string() + " is UDP");
  if (auto context = client_tls_context(f.tls, f.target, target))
    s.factory = TlsContext::factory(std::move(context));
  return s;
}

int run_pingpong_cmd(const CommonFlags& f, bench::PingpongOptions o, bool reply_timeout_given) {
  o.target = Endpoint::parse(f.target);
  o.stream = client_stream(f, o.target);
  const bool udp = o.target.is_udp();
  // A lost datagram holds its slot for the reply timeout: a shorter default over UDP.
  if (udp && !reply_timeout_given) o.reply_timeout_s = 1;
  o.threads = f.threads;
  o.duration_s = f.duration_s;
  o.progress = progress_line(f, "msgs");
  bench::PingpongResult r = bench::run_pingpong(o);
  end_progress(f);
  double mib = r.msgs_per_s() * o.size / (1024.0 * 1024.0);
  double loss_pct = r.sent ? 100.0 * r.lost / r.sent : 0;
  if (f.json) {
    std::string loss =
        udp ? fmt::format(R"(,"sent":{},"lost":{},"loss_pct":{:.3f},"reply_timeout_s":{:.3f})",
                          r.sent, r.lost, loss_pct, o.reply_timeout_s)
            : "";
    std::printf(
        R"({"mode":"pingpong","target":"%s","conns":%zu,"size":%zu,"pipeline":%zu,"threads":%zu,"rate":%.1f,"duration_s":%.3f,"connected":%zu,"messages":%llu,"msgs_per_s":%.1f,"mib_per_s":%.3f,"latency_us":%s,"errors":%s%s,"client_cpu_s":%.3f})"
        "\n",
        o.target.to_string().c_str(), o.conns, o.size, o.pipeline, o.threads, o.rate, r.measured_s,
        r.connected, static_cast<unsigned long long>(r.messages), r.msgs_per_s(), mib,
        latency_json(r.latency_ns).c_str(), errors_json(r.errors).c_str(), loss.c_str(),
        r.client_cpu_s);
  } else {
    std::printf("pingpong %s: %zu %s x %zu B, pipeline %zu, %zu thread%s, %.1f s%s\n",
                o.target.to_string().c_str(), o.conns, udp ? "sockets" : "conns", o.size,
                o.pipeline, o.threads, o.threads == 1 ? "" : "s", r.measured_s,
                o.rate > 0 ? fmt::format(", fixed rate {:.0f}/s", o.rate).c_str() : "");
    std::printf("  messages  %llu  (%.0f msgs/s, %.2f MiB/s each way)\n",
                static_cast<unsigned long long>(r.messages), r.msgs_per_s(), mib);
    print_latency("latency", r.latency_ns);
    if (udp)
      std::printf("  loss      %llu of %llu datagrams (%.3f%%; no reply within %.2f s)\n",
                  static_cast<unsigned long long>(r.lost), static_cast<unsigned long long>(r.sent),
                  loss_pct, o.reply_timeout_s);
    print_errors(r.errors);
    if (!udp)
      std::printf("  client    %.2f CPU s (%zu of %zu connected)\n", r.client_cpu_s, r.connected,
                  o.conns);
    else
      std::printf("  client    %.2f CPU s\n", r.client_cpu_s);
  }
  if (udp && r.messages == 0) return kExitFailure;  // nothing answered: nothing measured
  return exit_code_for(r.messages, r.errors);
}

int run_connect_cmd(const CommonFlags& f, bench::ConnectOptions o) {
  o.target = Endpoint::parse(f.target);
  o.stream = client_stream(f, o.target);
  o.threads = f.threads;
  o.duration_s = f.duration_s;
  o.progress = progress_line(f, "conns");
  bench::ConnectResult r = bench::run_connect(o);
  end_progress(f);
  if (f.json) {
    std::printf(
        R"({"mode":"connect","target":"%s","concurrency":%zu,"threads":%zu,"duration_s":%.3f,"completed":%llu,"conns_per_s":%.1f,"latency_us":%s,"errors":%s,"client_cpu_s":%.3f})"
        "\n",
        o.target.to_string().c_str(), o.concurrency, o.threads, r.measured_s,
        static_cast<unsigned long long>(r.completed), r.conns_per_s(),
        latency_json(r.latency_ns).c_str(), errors_json(r.errors).c_str(), r.client_cpu_s);
  } else {
    std::printf("connect %s: concurrency %zu, %zu thread%s, %.1f s\n", o.target.to_string().c_str(),
                o.concurrency, o.threads, o.threads == 1 ? "" : "s", r.measured_s);
    std::printf("  completed %llu  (%.0f conns/s: connect, 1-byte echo, close)\n",
                static_cast<unsigned long long>(r.completed), r.conns_per_s());
    print_latency("latency", r.latency_ns);
    print_errors(r.errors);
  }
  return exit_code_for(r.completed, r.errors);
}

int run_idle_cmd(const CommonFlags& f, bench::IdleOptions o) {
  o.target = Endpoint::parse(f.target);
  o.stream = client_stream(f, o.target);
  o.threads = f.threads;
  o.progress = progress_line(f, "open");
  bench::IdleResult r = bench::run_idle(o);
  end_progress(f);
  long delta = r.server_rss_before_kib >= 0 && r.server_rss_after_kib >= 0
                   ? r.server_rss_after_kib - r.server_rss_before_kib
                   : -1;
  if (f.json) {
    std::printf(
        R"({"mode":"idle","target":"%s","conns":%zu,"hold_s":%.1f,"source_addresses":%zu,"opened":%zu,"alive":%zu,"failed":%zu,"server_rss_before_kib":%ld,"server_rss_after_kib":%ld,"server_rss_delta_kib":%ld,"client_cpu_s":%.3f})"
        "\n",
        o.target.to_string().c_str(), o.conns, o.hold_s, r.source_addresses, r.opened, r.alive,
        r.failed, r.server_rss_before_kib, r.server_rss_after_kib, delta, r.client_cpu_s);
  } else {
    std::printf("idle %s: %zu conns held %.1f s (%zu source address%s)\n",
                o.target.to_string().c_str(), o.conns, o.hold_s, r.source_addresses,
                r.source_addresses == 1 ? "" : "es");
    std::printf("  opened %zu  alive after hold %zu  failed %zu\n", r.opened, r.alive, r.failed);
    if (delta >= 0)
      std::printf("  server RSS %ld KiB -> %ld KiB (+%ld KiB, %.0f bytes per connection)\n",
                  r.server_rss_before_kib, r.server_rss_after_kib, delta,
                  r.opened ? delta * 1024.0 / r.opened : 0.0);
  }
  return r.failed == 0 ? kExitOk : kExitFailure;
}

int run_fanout_cmd(const CommonFlags& f, bench::FanoutOptions o,
                   const std::vector<std::string>& spread_over) {
  o.target = Endpoint::parse(f.target);
  for (const std::string& ep : spread_over) o.more_targets.push_back(Endpoint::parse(ep));
  o.stream = client_stream(f, o.target);
  o.threads = f.threads;
  o.duration_s = f.duration_s;
  o.progress = progress_line(f, "delivered");
  bench::FanoutResult r = bench::run_fanout(o);
  end_progress(f);
  if (f.json) {
    std::printf(
        R"({"mode":"fanout","target":"%s","nodes":%zu,"members":%zu,"senders":%zu,"threads":%zu,"duration_s":%.3f,"joined":%zu,"sent":%llu,"deliveries":%llu,"deliveries_per_s":%.1f,"latency_us":%s,"errors":%s,"client_cpu_s":%.3f})"
        "\n",
        o.target.to_string().c_str(), 1 + o.more_targets.size(), o.members, o.senders, o.threads,
        r.measured_s, r.joined, static_cast<unsigned long long>(r.sent),
        static_cast<unsigned long long>(r.deliveries), r.deliveries_per_s(),
        latency_json(r.latency_ns).c_str(), errors_json(r.errors).c_str(), r.client_cpu_s);
  } else {
    std::printf("fanout %s%s: %zu members in %s, %zu sender%s, %.1f s\n",
                o.target.to_string().c_str(),
                o.more_targets.empty() ? ""
                                       : (" and " + std::to_string(o.more_targets.size()) +
                                          " more node" + (o.more_targets.size() == 1 ? "" : "s"))
                                             .c_str(),
                o.members, o.room.c_str(), o.senders, o.senders == 1 ? "" : "s", r.measured_s);
    std::printf("  joined    %zu of %zu\n", r.joined, o.members);
    std::printf("  delivered %llu  (%.0f deliveries/s from %llu messages)\n",
                static_cast<unsigned long long>(r.deliveries), r.deliveries_per_s(),
                static_cast<unsigned long long>(r.sent));
    print_latency("latency", r.latency_ns);
    print_errors(r.errors);
  }
  return r.joined == o.members && r.deliveries > 0 ? kExitOk : kExitFailure;
}

}  // namespace

void add_bench_command(CLI::App& app, Action& action) {
  CLI::App* bench = app.add_subcommand("bench", "Load generators for echo-compatible servers");
  bench->require_subcommand(1);

  {
    auto f = std::make_shared<CommonFlags>();
    auto o = std::make_shared<bench::PingpongOptions>();
    CLI::App* cmd = bench->add_subcommand(
        "pingpong", "Each connection sends a block and waits for all of it to come back");
    add_common(*cmd, *f, true);
    cmd->get_option("endpoint")
        ->description(
            "Server: HOST:PORT, [IPv6]:PORT, unix:/path, or udp:HOST:PORT (each message is one "
            "datagram; --conns sockets; loss is reported)");
    cmd->add_option("-c,--conns", o->conns, "Connections")
        ->check(CLI::Range(size_t{1}, size_t{1000000}))
        ->capture_default_str();
    cmd->add_option("-s,--size", o->size, "Bytes per message")
        ->check(CLI::Range(size_t{1}, size_t{64} << 20))
        ->capture_default_str();
    cmd->add_option("-p,--pipeline", o->pipeline, "Messages in flight per connection")
        ->check(CLI::Range(size_t{1}, size_t{1024}))
        ->capture_default_str();
    cmd->add_option("--rate", o->rate,
                    "Fixed total rate in messages/s (latency from the intended send time); "
                    "0 = closed loop")
        ->check(FiniteRange(0.0, 1e9))
        ->capture_default_str();
    cmd->add_option("--warmup", o->warmup_s, "Seconds to run before measuring")
        ->check(FiniteRange(0.0, 3600.0))
        ->capture_default_str();
    CLI::Option* reply_timeout =
        cmd->add_option("--reply-timeout", o->reply_timeout_s,
                        "A reply later than this many seconds counts as a timeout (udp: as lost; "
                        "default 1 there)")
            ->check(FiniteRange(0.01, 3600.0))
            ->capture_default_str();
    cmd->callback([&action, f, o, reply_timeout] {
      action = [f, o, given = reply_timeout->count() > 0] {
        return run_pingpong_cmd(*f, *o, given);
      };
    });
  }
  {
    auto f = std::make_shared<CommonFlags>();
    auto o = std::make_shared<bench::ConnectOptions>();
    CLI::App* cmd = bench->add_subcommand("connect", "Connect, 1-byte round trip, close; repeat");
    add_common(*cmd, *f, true);
    cmd->add_option("-c,--concurrency", o->concurrency, "Connections in progress at once")
        ->check(CLI::Range(size_t{1}, size_t{100000}))
        ->capture_default_str();
    cmd->callback([&action, f, o] { action = [f, o] { return run_connect_cmd(*f, *o); }; });
  }
  {
    auto f = std::make_shared<CommonFlags>();
    auto o = std::make_shared<bench::FanoutOptions>();
    CLI::App* cmd = bench->add_subcommand(
        "fanout", "Chat fan-out: N members in one room, M of them sending; deliveries/s");
    add_common(*cmd, *f, true);
    cmd->add_option("-m,--members", o->members, "Clients in the room")
        ->check(CLI::Range(size_t{1}, size_t{100000}))
        ->capture_default_str();
    cmd->add_option("--senders", o->senders, "How many members send")
        ->check(CLI::Range(size_t{1}, size_t{100000}))
        ->capture_default_str();
    cmd->add_option("--room", o->room, "Room to use")->capture_default_str();
    cmd->add_option("--warmup", o->warmup_s, "Seconds to run before measuring")
        ->check(FiniteRange(0.0, 3600.0))
        ->capture_default_str();
    auto spread = std::make_shared<std::vector<std::string>>();
    cmd->add_option("--spread-over", *spread,
                    "Other nodes of a chat cluster (keel chat --redis): members are spread "
                    "round-robin over the target and these (repeatable)")
        ->type_name("EP");
    cmd->callback([&action, f, o, spread] {
      action = [f, o, spread] { return run_fanout_cmd(*f, *o, *spread); };
    });
  }
  {
    auto f = std::make_shared<CommonFlags>();
    auto o = std::make_shared<bench::IdleOptions>();
    CLI::App* cmd = bench->add_subcommand(
        "idle", "Open N connections, hold them, then check each still echoes");
    add_common(*cmd, *f, false);
    cmd->add_option("-c,--conns", o->conns, "Connections to open")
        ->check(CLI::Range(size_t{1}, size_t{1000000}))
        ->capture_default_str();
    cmd->add_option("--hold", o->hold_s, "Seconds to hold them open")
        ->check(FiniteRange(0.0, 86400.0))
        ->capture_default_str();
    cmd->add_option("--server-pid", o->server_pid, "Report this process's RSS before and after");
    cmd->callback([&action, f, o] { action = [f, o] { return run_idle_cmd(*f, *o); }; });
  }
}

}  // namespace keel::cli
