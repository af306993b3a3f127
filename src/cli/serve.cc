// keel serve / keel echo: run services on a reactor until SIGINT or SIGTERM, then drain.
#include <signal.h>
#include <spdlog/spdlog.h>

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "cli/commands.h"
#include "keel/engine/reactor.h"
#include "keel/error.h"
#include "services/echo/echo_service.h"

namespace keel::cli {
namespace {

struct ServerFlags {
  size_t threads = 1;
  size_t high_water_bytes = 1 << 20;
  size_t max_connections = 0;
  bool reuse_port = false;
  double drain_timeout_s = 5.0;
};

void add_server_flags(CLI::App& cmd, ServerFlags& flags) {
  cmd.add_option("-t,--threads", flags.threads, "Event-loop threads")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
  cmd.add_option("--high-water", flags.high_water_bytes,
                 "Per-connection output bytes above which a client's reading is paused")
      ->check(CLI::Range(size_t{1024}, size_t{1} << 30))
      ->capture_default_str();
  cmd.add_option("--max-connections", flags.max_connections,
                 "Refuse (accept and close) connections over this many; 0 = no cap")
      ->capture_default_str();
  cmd.add_flag("--reuse-port", flags.reuse_port,
               "One SO_REUSEPORT listener per thread instead of one acceptor");
  cmd.add_option("--drain-timeout", flags.drain_timeout_s,
                 "Seconds to let pending output drain on SIGINT/SIGTERM")
      ->check(CLI::Range(0.0, 3600.0))
      ->capture_default_str();
}

struct ServiceRun {
  std::unique_ptr<Service> service;
  std::vector<std::string> listen;
};

std::vector<Endpoint> parse_endpoints(const std::vector<std::string>& texts) {
  std::vector<Endpoint> eps;
  for (const auto& t : texts) eps.push_back(Endpoint::parse(t));
  return eps;
}

// Blocks SIGINT and SIGTERM in this thread and every thread started after, so sigwait() below
// is the only place they are handled.
sigset_t block_stop_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  return set;
}

int run_services(std::vector<ServiceRun> runs, const ServerFlags& flags) {
  sigset_t stop_signals = block_stop_signals();
  LoopPool pool(flags.threads);
  std::vector<std::unique_ptr<ReactorEngine>> engines;
  for (auto& run : runs) {
    ServerOptions options;
    options.listen = parse_endpoints(run.listen);
    options.high_water_bytes = flags.high_water_bytes;
    options.max_connections = flags.max_connections;
    options.listener_per_loop = flags.reuse_port;
    engines.push_back(std::make_unique<ReactorEngine>(pool, std::move(options), *run.service));
  }
  // Bind everything before serving anything: a port in use fails the whole start.
  for (auto& engine : engines) engine->start();
  pool.start();
  for (auto& engine : engines)
    for (const Endpoint& ep : engine->endpoints())
      spdlog::info("{} listening on {} ({} thread{})", engine->service().name(), ep.to_string(),
                   flags.threads, flags.threads == 1 ? "" : "s");

  int signal_number = 0;
  sigwait(&stop_signals, &signal_number);
  size_t open = 0;
  for (auto& engine : engines) open += engine->server().connection_count();
  spdlog::info("{}: no longer accepting; draining {} connection{} (up to {} s)",
               strsignal(signal_number), open, open == 1 ? "" : "s", flags.drain_timeout_s);

  auto deadline = std::chrono::steady_clock::now() +
                  std::chrono::milliseconds(static_cast<int64_t>(flags.drain_timeout_s * 1000));
  for (auto& engine : engines) engine->server().stop_accepting();
  size_t forced = 0;
  for (auto& engine : engines) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    forced += engine->drain(std::max(left, std::chrono::milliseconds(0)));
  }
  for (auto& engine : engines) engine->stop();
  pool.stop();
  if (forced)
    spdlog::warn("stopped; {} connection{} did not finish in time and were closed", forced,
                 forced == 1 ? "" : "s");
  else
    spdlog::info("stopped");
  return kExitOk;
}

}  // namespace

void add_serve_commands(CLI::App& app, Action& action) {
  auto flags = std::make_shared<ServerFlags>();
  auto echo_listen = std::make_shared<std::vector<std::string>>();

  CLI::App* serve = app.add_subcommand("serve", "Run keel's services (echo on 127.0.0.1:7000)");
  serve->add_option("--echo", *echo_listen, "Echo service endpoint(s)")
      ->default_str("127.0.0.1:7000");
  add_server_flags(*serve, *flags);
  serve->callback([&action, flags, echo_listen] {
    action = [flags, echo_listen] {
      std::vector<ServiceRun> runs;
      std::vector<std::string> listen = *echo_listen;
      if (listen.empty()) listen.push_back("127.0.0.1:7000");
      runs.push_back({std::make_unique<EchoService>(), listen});
      return run_services(std::move(runs), *flags);
    };
  });

  auto listen = std::make_shared<std::vector<std::string>>();
  CLI::App* echo = app.add_subcommand("echo", "Echo every byte back, exactly and in order");
  echo->add_option("-l,--listen", *listen,
                   "Endpoint to listen on (repeatable): HOST:PORT, "
                   "[IPv6]:PORT, :PORT or unix:/path")
      ->default_str("127.0.0.1:7000");
  add_server_flags(*echo, *flags);
  echo->callback([&action, flags, listen] {
    action = [flags, listen] {
      std::vector<std::string> eps = *listen;
      if (eps.empty()) eps.push_back("127.0.0.1:7000");
      std::vector<ServiceRun> runs;
      runs.push_back({std::make_unique<EchoService>(), eps});
      return run_services(std::move(runs), *flags);
    };
  });
}

}  // namespace keel::cli
