// keel serve / echo / chat / hub: run services on a reactor until SIGINT or SIGTERM, then drain.
#include <malloc.h>
#include <signal.h>
#include <spdlog/spdlog.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "admin/admin_server.h"
#include "cli/cluster_flags.h"
#include "cli/commands.h"
#include "cli/config_file.h"
#include "cli/http_endpoint.h"
#include "cli/serve_files.h"
#include "cli/serve_hub.h"
#include "cli/serve_udp.h"
#include "cli/serve_workers.h"
#include "cli/server_common.h"
#include "cli/timeout_flags.h"
#include "cli/transport_flags.h"
#include "cli/validators.h"
#include "cluster/operator_relay.h"
#include "engine/worker_process.h"
#include "keel/engine/factory.h"
#include "keel/error.h"
#include "keel/net/io_backend.h"
#include "services/chat/chat_service.h"
#include "services/echo/datagram_echo_service.h"
#include "services/echo/echo_service.h"

namespace keel::cli {
namespace {

struct ServerFlags {
  std::string model = "reactor";
  size_t threads = 1;
  size_t max_connections = 0;
  size_t max_connections_per_ip = 0;
  bool reuse_port = false;
  double drain_timeout_s = 5.0;
  std::string admin = "default";
  std::string admin_token_file;
  size_t workers = 0;
  std::string worker_role;  // hidden --worker SERVICE:SLOT, set by a --workers supervisor
  std::string io;           // --io; empty: KEEL_IO, else epoll
  HttpFlags http;
  TransportFlags transport;
  TimeoutFlags timeouts;
};

struct EchoFlags {
  std::vector<std::string> listen;
  size_t high_water_bytes = 1 << 20;
};

struct ChatFlags {
  std::vector<std::string> listen;
  std::string framing = "lines";
  size_t max_line_bytes = 4096;
  size_t max_queued_bytes = 1 << 20;
  // Flood control; why this default: docs/operations.md, "Flood control".
  std::string max_input_rate = "64k/s,256k";
  ClusterFlags cluster;
};

void add_server_flags(CLI::App& cmd, ServerFlags& f) {
  cmd.add_option("--model", f.model,
                 "Concurrency model: reactor (event loops), threads (a thread per connection) or "
                 "processes (a process per connection; services without shared state only)")
      ->check(CLI::IsMember({"reactor", "threads", "processes"}))
      ->capture_default_str();
  cmd.add_option("-t,--threads", f.threads, "Event-loop threads (reactor model)")
      ->check(CLI::Range(1, 256))
      ->capture_default_str();
  cmd.add_option("--max-connections", f.max_connections,
                 "Refuse (accept and close) connections over this many per service; 0 = no cap")
      ->capture_default_str();
  cmd.add_option("--max-connections-per-ip", f.max_connections_per_ip,
                 "Close a client's connection when its address (the PROXY header's with "
                 "--proxy-protocol) already has this many open, per service; 0 = no cap")
      ->capture_default_str();
  cmd.add_flag("--reuse-port", f.reuse_port,
               "One SO_REUSEPORT listener per thread instead of one acceptor");
  cmd.add_option("--io", f.io,
                 "How event loops wait: epoll, or uring (io_uring; epoll with a warning where the "
                 "kernel refuses it). Default: the KEEL_IO environment variable, else epoll")
      ->check(CLI::IsMember({"epoll", "uring"}));
  cmd.add_option("--drain-timeout", f.drain_timeout_s,
                 "Seconds to let pending output drain on SIGINT/SIGTERM")
      ->check(FiniteRange(0.0, 3600.0))
      ->capture_default_str();
  cmd.add_option("--admin", f.admin,
                 "Operator endpoint for `keel ctl`: unix:/path (mode 0600), 127.0.0.1:PORT (needs "
                 "--admin-token-file), or none. Default: unix:/run/keel/admin.sock as root, else "
                 "unix:./keel-admin.sock")
      ->default_str("default");
  cmd.add_option("--admin-token-file", f.admin_token_file,
                 "File whose first line is the token TCP admin clients must send");
  cmd.add_option("--workers", f.workers,
                 "Prefork: a supervisor and this many worker processes (reactor model), each "
                 "with its own SO_REUSEPORT listeners on the same port(s); a dead worker is "
                 "restarted. Services without shared state only (echo). 0 = off")
      ->check(CLI::Range(0, 256))
      ->capture_default_str();
  cmd.add_option(kWorkerFlag, f.worker_role)->group("");  // hidden: the supervisor's workers
  cmd.add_option("--http", f.http.endpoint,
                 "HTTP endpoint (dashboard, /metrics, /api/...): 127.0.0.1:PORT or [::1]:PORT; "
                 "another address needs --http-token-file (or --admin-token-file). Default: off");
  cmd.add_option("--http-token-file", f.http.token_file,
                 "File whose first line is the token of the HTTP endpoint (Authorization: Bearer); "
                 "default: --admin-token-file's, else a random one logged at start");
  add_transport_flags(cmd, f.transport);
  add_timeout_flags(cmd, f.timeouts);
}

void add_echo_flags(CLI::App& cmd, EchoFlags& f) {
  cmd.add_option("--high-water", f.high_water_bytes,
                 "Echo: per-connection output bytes above which a client's reading is paused")
      ->check(CLI::Range(size_t{1024}, size_t{1} << 30))
      ->capture_default_str();
}

void add_chat_flags(CLI::App& cmd, ChatFlags& f) {
  cmd.add_option("--framing", f.framing,
                 "Chat: 'lines' (LF or CRLF) or 'length' (4-byte BE + payload)")
      ->check(CLI::IsMember({"lines", "length"}))
      ->capture_default_str();
  cmd.add_option("--max-line", f.max_line_bytes, "Chat: longest line or frame accepted, in bytes")
      ->check(CLI::Range(size_t{16}, size_t{16} << 20))
      ->capture_default_str();
  cmd.add_option("--max-queued-bytes", f.max_queued_bytes,
                 "Chat: a client with more output than this waiting is disconnected as too slow")
      ->check(CLI::Range(size_t{1024}, size_t{1} << 30))
      ->capture_default_str();
  cmd.add_option("--max-input-rate", f.max_input_rate,
                 "Chat: each client's input budget, BYTES/S[,BURST] (k, m, g: powers of 1024; "
                 "burst defaults to one second's worth); over it, reading from the client pauses "
                 "until the budget refills. 0 or off: no budget")
      ->check(ParsedBy([](const std::string& text) { parse_input_rate(text); }, ""))
      ->type_name("BYTES/S[,BURST]")
      ->capture_default_str();
  add_cluster_flags(cmd, f.cluster, "rooms, nicks, private messages and the operator's view");
}

struct ServiceRun {
  std::unique_ptr<Service> service;
  std::vector<std::string> listen;
  size_t high_water_bytes;
  std::unique_ptr<DatagramService> datagrams = nullptr;  // serves udp: listeners, if it can
  // --redis: the service's link to the other nodes, started with the engines, stopped after.
  std::unique_ptr<cluster::Backplane> backplane = nullptr;
};

ServiceRun echo_run(const EchoFlags& f, const char* default_listen) {
  std::vector<std::string> listen = f.listen;
  if (listen.empty()) listen.push_back(default_listen);
  return {std::make_unique<EchoService>(), listen, f.high_water_bytes,
          std::make_unique<DatagramEchoService>()};
}

ServiceRun chat_run(const ChatFlags& f, const char* default_listen) {
  chat::ChatOptions o;
  o.framing = f.framing == "length" ? chat::Framing::length : chat::Framing::lines;
  o.max_line_bytes = f.max_line_bytes;
  o.input_rate = parse_input_rate(f.max_input_rate);
  std::vector<std::string> listen = f.listen;
  if (listen.empty()) listen.push_back(default_listen);
  auto service = std::make_unique<chat::ChatService>(o);
  std::unique_ptr<cluster::Backplane> backplane;
  if (auto cluster = backplane_options(f.cluster, "chat"))
    backplane = make_chat_backplane(*service, std::move(*cluster));
  return {std::move(service), listen, f.max_queued_bytes, nullptr, std::move(backplane)};
}

ServiceRun hub_run(const HubFlags& f, const char* default_listen) {
  std::vector<std::string> listen = f.listen;
  if (listen.empty()) listen.push_back(default_listen);
  auto service = std::make_unique<hub::HubService>(hub_options(f));
  std::unique_ptr<cluster::Backplane> backplane;
  if (auto cluster = backplane_options(f.cluster, "hub")) {
    backplane = make_plain_backplane(std::move(*cluster));
    service->join_cluster(*backplane);
  }
  return {std::move(service), listen, kHubMaxQueuedBytes, nullptr, std::move(backplane)};
}

ServiceRun files_run(const FilesFlags& f, const char* default_listen) {
  std::vector<std::string> listen = f.listen;
  if (listen.empty()) listen.push_back(default_listen);
  return {std::make_unique<files::FilesService>(files_options(f)), listen, kFilesHighWaterBytes};
}

// --io, else KEEL_IO, else epoll, made the default of every loop of this process (services,
// admin, http, udp, and the children of --model processes). uring where the kernel refuses
// io_uring is epoll, with the reason logged.
void choose_io_backend(const std::string& flag) {
  IoBackend io = flag.empty() ? default_io_backend() : parse_io_backend(flag).value();
  if (io == IoBackend::uring) {
    std::string why;
    if (io_uring_available(&why)) {
      spdlog::info("event loops wait with io_uring");
    } else {
      spdlog::warn("io_uring asked for but {}: event loops use epoll", why);
      io = IoBackend::epoll;
    }
  }
  set_default_io_backend(io);
}

// How the log's "listening" line says what serves the service.
std::string model_description(const Engine& engine, size_t threads) {
  std::string model = engine.model();
  if (model == "reactor") return std::to_string(threads) + " thread" + (threads == 1 ? "" : "s");
  if (model == "threads") return "a thread per connection";
  if (model == "workers")
    return "worker processes, each with " + std::to_string(threads) + " thread" +
           (threads == 1 ? "" : "s");
  return "a process per connection";
}

// Connections a deadline closed, logged at most once a second per service and reason with a
// count, from the engines' counters ("echo: 3 connections closed in the last second: idle
// timeout"). A line per closed connection would flood the log when many time out.
class DeadlineLog {
 public:
  explicit DeadlineLog(const std::vector<std::unique_ptr<Engine>>& engines)
      : engines_(engines), seen_(engines.size()) {}
  void tick() {
    for (size_t i = 0; i < engines_.size(); ++i) {
      EngineStats stats = engines_[i]->stats();
      for (CloseReason::Kind kind : kKinds) {
        const size_t k = static_cast<size_t>(kind);
        const uint64_t n = stats.closed[k] - seen_[i][k];
        seen_[i][k] = stats.closed[k];
        if (n == 0) continue;
        spdlog::info("{}: {} connection{} closed in the last second: {}",
                     engines_[i]->service().name(), n, n == 1 ? "" : "s",
                     CloseReason{kind, 0, {}}.to_string());
      }
    }
  }

 private:
  // The pre-open deadline is not here: each of those closes has a warning line of its own.
  static constexpr CloseReason::Kind kKinds[] = {CloseReason::Kind::idle_timeout,
                                                 CloseReason::Kind::half_close_timeout,
                                                 CloseReason::Kind::unreachable};
  const std::vector<std::unique_ptr<Engine>>& engines_;
  std::vector<std::array<uint64_t, CloseReason::kKinds>> seen_;
};

// The node name of the first service with a backplane.
std::string relay_node(const std::vector<ServiceRun>& runs) {
  for (const auto& run : runs)
    if (run.backplane) return run.backplane->options().node;
  return {};
}

int run_services(std::vector<ServiceRun> runs, const ServerFlags& flags) {
  sigset_t stop_signals = block_stop_signals();
  // --workers: this process supervises (serving nothing itself), or is one of its workers.
  std::optional<WorkerRole> role = parse_worker_role(flags.worker_role);
  std::unique_ptr<WorkerProcess> worker;
  if (role) {
    if (role->service >= runs.size()) throw Error("--worker: no such service");
    worker = std::make_unique<WorkerProcess>(role->slot);  // before any thread starts
    label_worker_logs(*role);
    ServiceRun mine = std::move(runs[role->service]);
    runs.clear();
    runs.push_back(std::move(mine));
  }
  const bool supervise = flags.workers > 0 && !role;
  if (supervise) {
    if (flags.model != "reactor")
      throw Error("--workers runs reactor workers: it cannot be combined with --model " +
                  flags.model);
    std::vector<const Service*> services;
    for (auto& run : runs) services.push_back(run.service.get());
    check_workers_fit(services);
    if (flags.max_connections_per_ip)
      throw Error(
          "--max-connections-per-ip cannot be combined with --workers: each worker process "
          "would count its own clients only");
  }
  // Under processes only the child reads the header: the parent, which lists the connections
  // for keel ctl, would show every client as the proxy's address.
  if (flags.transport.proxy_protocol && flags.model == "processes")
    throw Error("--proxy-protocol needs --model reactor or threads (or --workers): under " +
                flags.model + " keel ctl would list clients by the proxy's address");
  std::optional<AdminOptions> admin_opts =
      role ? std::nullopt : admin_options(flags.admin, flags.admin_token_file);
  std::unique_ptr<HttpEndpoint> http;
  if (!flags.http.endpoint.empty() && !role)
    http = std::make_unique<HttpEndpoint>(flags.http, flags.admin_token_file);
  // --model threads: glibc gives connection threads malloc arenas of their own (up to 8 per
  // core), and each arena keeps a megabyte or two after its clients are gone, which
  // malloc_trim cannot give back (50 clients pushing 10 MB and resetting left the server at
  // 25-47 MiB, baseline 8). Two arenas serve threads that mostly wait (8.3 MiB after); the
  // MALLOC_ARENA_MAX environment variable still decides when it is set.
  if (flags.model == "threads" && !std::getenv("MALLOC_ARENA_MAX")) ::mallopt(M_ARENA_MAX, 2);
  choose_io_backend(flags.io);
  LoopPool pool(flags.threads);
  std::vector<std::unique_ptr<RefusalLog>> refusal_logs;  // outlive the engines that use them
  std::vector<std::unique_ptr<Engine>> engines;
  DatagramListeners udp;  // udp: listeners, on a loop of their own whatever the model
  for (size_t i = 0; i < runs.size(); ++i) {
    ServiceRun& run = runs[i];
    ServerOptions options;
    for (const auto& text : run.listen) {
      Endpoint ep = Endpoint::parse(text);
      if (!ep.is_udp()) {
        options.listen.push_back(ep);
        continue;
      }
      if (supervise || role)
        throw Error("--workers: " + ep.to_string() + ": udp: listeners run without --workers");
      udp.add(run.service->name(), run.datagrams.get(), ep);
    }
    if (options.listen.empty()) continue;  // udp: listeners only
    options.high_water_bytes = run.high_water_bytes;
    options.max_connections = flags.max_connections;
    // The services stop short of the open-file limit: the admin endpoint (keel ctl), the logs
    // and the sanitizers' runtimes keep descriptors to work with when clients take the rest.
    options.fd_headroom = 16;
    options.max_connections_per_ip = flags.max_connections_per_ip;
    refusal_logs.push_back(std::make_unique<RefusalLog>(run.service->name(), flags.max_connections,
                                                        flags.max_connections_per_ip));
    options.on_refused = [log = refusal_logs.back().get()](Refusal r) { log->refused(r); };
    options.listener_per_loop = flags.reuse_port;
    options.stream = stream_options(flags.transport, run.service->name());
    apply_timeout_flags(flags.timeouts, options.timeouts, options.socket);
    if (worker) {  // the supervisor's ports (resolved), shared with the other workers
      options.listen = worker->endpoints();
      options.listener_per_loop = true;
    }
    if (supervise)
      engines.push_back(make_workers_engine(i, flags.workers, options.listen, *run.service));
    else
      engines.push_back(
          make_engine(*parse_model(flags.model), pool, std::move(options), *run.service));
  }
  // Bind everything before serving anything: a port in use fails the whole start.
  for (auto& engine : engines) engine->start();
  // A cluster node answers the other nodes' operator requests with its own admin commands, and
  // its admin endpoint reaches them (keel ctl list --cluster, send NODE/ID).
  std::vector<Engine*> all_engines;
  for (auto& e : engines) all_engines.push_back(e.get());
  std::unique_ptr<cluster::OperatorRelay> relay;
  for (auto& run : runs)
    if (run.backplane) {
      if (supervise || role) throw Error("--redis cannot be combined with --workers");
      if (!relay)
        relay = std::make_unique<cluster::OperatorRelay>(
            *run.backplane,
            [all_engines](const std::string& request) {
              admin::CommandScope scope{all_engines};
              return admin::run_command(scope, admin::Json::parse(request, nullptr, false)).dump();
            },
            [all_engines](const std::string& request, std::shared_ptr<OperatorStream> stream,
                          cluster::OperatorRelay::Executor* next) {
              std::function<admin::Json(const admin::Json&)> say;
              admin::Json reply = admin::attach_for_remote(
                  admin::CommandScope{all_engines}, admin::Json::parse(request, nullptr, false),
                  std::move(stream), &say);
              if (say)
                *next = [say = std::move(say)](const std::string& r) {
                  return say(admin::Json::parse(r, nullptr, false)).dump();
                };
              return reply.dump();
            });
      run.backplane->start();
      spdlog::info("{}: cluster node {} on {}", run.service->name(), run.backplane->options().node,
                   run.backplane->options().redis.to_string());
    }
  // After the engines: a processes engine forks its spawner in start(), which must happen
  // before this loop's thread exists (and without the UDP sockets).
  udp.start();
  std::unique_ptr<AdminServer> admin;
  if (admin_opts) {
    std::vector<Engine*> list;
    for (auto& e : engines) list.push_back(e.get());
    admin = std::make_unique<AdminServer>(*admin_opts, list);
    if (relay) {
      cluster::OperatorRelay* r = relay.get();
      // The relay's answers as the admin endpoint's.
      auto answers = [](admin::ClusterOps::Done done) {
        return [done = std::move(done)](cluster::OperatorRelay::Answers a) {
          admin::ClusterOps::Replies replies;
          for (auto& [node, text] : a.replies)
            replies.emplace_back(node, admin::Json::parse(text, nullptr, false));
          done(std::move(replies), std::move(a.missing));
        };
      };
      static constexpr auto kNodeTimeout = std::chrono::seconds(2);
      admin->set_cluster(admin::ClusterOps{
          relay_node(runs),
          [r, answers](const std::string& target, const admin::Json& request,
                       admin::ClusterOps::Done done) {
            r->ask(target, request.dump(), kNodeTimeout, answers(std::move(done)));
          },
          [r, answers](const std::string& target, const admin::Json& request,
                       const std::string& holder, std::shared_ptr<OperatorStream> stream,
                       admin::ClusterOps::Done done) {
            r->attach(target, request.dump(), holder, std::move(stream), kNodeTimeout,
                      answers(std::move(done)));
          },
          [r, answers](const OperatorStream* stream, const admin::Json& request,
                       admin::ClusterOps::Done done) {
            r->session_request(stream, request.dump(), kNodeTimeout, answers(std::move(done)));
          },
          [r, answers](const std::string& target, admin::ClusterOps::Done done) {
            r->sync(target, kNodeTimeout, answers(std::move(done)));
          }});
    }
    admin->start();
  }
  if (http) {
    std::vector<Engine*> list;
    for (auto& e : engines) list.push_back(e.get());
    http->start(list, pool);
  }
  if (!supervise) pool.start();  // a supervisor's loops would have nothing to serve
  if (worker) {
    std::vector<Engine*> list;
    for (auto& e : engines) list.push_back(e.get());
    worker->serving(list);
  }
  for (auto& engine : engines)
    for (const Endpoint& ep : engine->endpoints())
      spdlog::info("{} listening on {} ({})", engine->service().name(), ep.to_string(),
                   model_description(*engine, flags.threads));
  udp.log_listening();
  if (admin)
    spdlog::info("admin listening on {} (keel ctl --admin {})", admin->endpoint().to_string(),
                 admin->endpoint().to_string());
  if (http) {
    std::string url = http->dashboard_url();
    spdlog::info("http listening on {}{}", http->endpoint(),
                 url.empty() ? std::string() : " (dashboard: " + url + ")");
  }

  DeadlineLog deadlines(engines);
  int signal_number = wait_for_signal(stop_signals, [&refusal_logs, &deadlines] {
    for (auto& log : refusal_logs) log->tick();
    deadlines.tick();
  });
  size_t open = 0;
  for (auto& engine : engines) open += engine->connection_count();
  spdlog::info("{}: no longer accepting; draining {} connection{} (up to {} s)",
               strsignal(signal_number), open, open == 1 ? "" : "s", flags.drain_timeout_s);

  if (admin) admin->stop();
  if (http) http->draining();  // /readyz: 503 while the services drain
  udp.stop();
  auto deadline = std::chrono::steady_clock::now() +
                  std::chrono::milliseconds(static_cast<int64_t>(flags.drain_timeout_s * 1000));
  for (auto& engine : engines) engine->stop_accepting();
  size_t forced = 0;
  for (auto& engine : engines) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    forced += engine->drain(std::max(left, std::chrono::milliseconds(0)));
  }
  worker.reset();          // stops its publisher, which reads the engines' stats
  if (http) http->stop();  // it reads the engines' stats too
  for (auto& engine : engines) engine->stop();
  // After the engines: the members' departures are published first, then the node's `gone`.
  for (auto& run : runs)
    if (run.backplane) run.backplane->stop();
  pool.stop();
  for (auto& log : refusal_logs) log->tick(true);
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
  auto echo = std::make_shared<EchoFlags>();
  auto chat = std::make_shared<ChatFlags>();
  auto hub = std::make_shared<HubFlags>();

  CLI::App* serve = app.add_subcommand("serve",
                                       "Run keel's services: echo on 127.0.0.1:7000, chat on "
                                       "127.0.0.1:7001, hub on 127.0.0.1:7002");
  serve->add_option("--echo", echo->listen, "Echo service endpoint(s)")
      ->default_str("127.0.0.1:7000");
  serve->add_option("--chat", chat->listen, "Chat service endpoint(s)")
      ->default_str("127.0.0.1:7001");
  serve->add_option("--hub", hub->listen, "Hub service endpoint(s)")->default_str("127.0.0.1:7002");
  add_server_flags(*serve, *flags);
  add_echo_flags(*serve, *echo);
  add_chat_flags(*serve, *chat);
  add_serve_hub_flags(*serve, *hub);
  add_config_flags(*serve);
  serve->callback([&action, serve, flags, echo, chat, hub] {
    action = [serve, flags, echo, chat, hub] {
      if (print_config_requested(*serve)) {
        print_config(*serve, std::cout);
        return kExitOk;
      }
      std::vector<ServiceRun> runs;
      runs.push_back(echo_run(*echo, "127.0.0.1:7000"));
      runs.push_back(chat_run(*chat, "127.0.0.1:7001"));
      runs.push_back(hub_run(*hub, "127.0.0.1:7002"));
      return run_services(std::move(runs), *flags);
    };
  });

  auto echo_flags = std::make_shared<ServerFlags>();
  auto echo_only = std::make_shared<EchoFlags>();
  CLI::App* echo_cmd = app.add_subcommand("echo", "Echo every byte back, exactly and in order");
  echo_cmd
      ->add_option("-l,--listen", echo_only->listen,
                   "Endpoint to listen on (repeatable): HOST:PORT, [IPv6]:PORT, :PORT, "
                   "unix:/path, or udp:HOST:PORT (each datagram is echoed to its sender)")
      ->default_str("127.0.0.1:7000");
  add_server_flags(*echo_cmd, *echo_flags);
  add_echo_flags(*echo_cmd, *echo_only);
  add_config_flags(*echo_cmd);
  echo_cmd->callback([&action, echo_cmd, echo_flags, echo_only] {
    action = [echo_cmd, echo_flags, echo_only] {
      if (print_config_requested(*echo_cmd)) {
        print_config(*echo_cmd, std::cout);
        return kExitOk;
      }
      std::vector<ServiceRun> runs;
      runs.push_back(echo_run(*echo_only, "127.0.0.1:7000"));
      return run_services(std::move(runs), *echo_flags);
    };
  });

  auto chat_flags = std::make_shared<ServerFlags>();
  auto chat_only = std::make_shared<ChatFlags>();
  CLI::App* chat_cmd =
      app.add_subcommand("chat", "Chat rooms with nicknames and private messages (line protocol)");
  chat_cmd->add_option("-l,--listen", chat_only->listen, "Endpoint to listen on (repeatable)")
      ->default_str("127.0.0.1:7001");
  add_server_flags(*chat_cmd, *chat_flags);
  add_chat_flags(*chat_cmd, *chat_only);
  add_config_flags(*chat_cmd);
  chat_cmd->callback([&action, chat_cmd, chat_flags, chat_only] {
    action = [chat_cmd, chat_flags, chat_only] {
      if (print_config_requested(*chat_cmd)) {
        print_config(*chat_cmd, std::cout);
        return kExitOk;
      }
      std::vector<ServiceRun> runs;
      runs.push_back(chat_run(*chat_only, "127.0.0.1:7001"));
      return run_services(std::move(runs), *chat_flags);
    };
  });

  auto hub_flags = std::make_shared<ServerFlags>();
  auto hub_only = std::make_shared<HubFlags>();
  CLI::App* hub_cmd =
      app.add_subcommand("hub", "Park clients until an operator attaches to one (keel ctl attach)");
  hub_cmd->add_option("-l,--listen", hub_only->listen, "Endpoint to listen on (repeatable)")
      ->default_str("127.0.0.1:7002");
  add_server_flags(*hub_cmd, *hub_flags);
  add_hub_flags(*hub_cmd, *hub_only);
  add_config_flags(*hub_cmd);
  hub_cmd->callback([&action, hub_cmd, hub_flags, hub_only] {
    action = [hub_cmd, hub_flags, hub_only] {
      if (print_config_requested(*hub_cmd)) {
        print_config(*hub_cmd, std::cout);
        return kExitOk;
      }
      std::vector<ServiceRun> runs;
      runs.push_back(hub_run(*hub_only, "127.0.0.1:7002"));
      return run_services(std::move(runs), *hub_flags);
    };
  });

  auto files_server = std::make_shared<ServerFlags>();
  files_server->timeouts.idle_s = kFilesIdleTimeoutS;
  auto files_only = std::make_shared<FilesFlags>();
  CLI::App* files_cmd = app.add_subcommand(
      "files", "Serve the files beneath a directory (keel ls, get, put): resumable, verified");
  files_cmd->add_option("-l,--listen", files_only->listen, "Endpoint to listen on (repeatable)")
      ->default_str("127.0.0.1:7003");
  add_files_flags(*files_cmd, *files_only);
  add_server_flags(*files_cmd, *files_server);
  add_config_flags(*files_cmd);
  files_cmd->callback([&action, files_cmd, files_server, files_only] {
    action = [files_cmd, files_server, files_only] {
      if (print_config_requested(*files_cmd)) {
        print_config(*files_cmd, std::cout);
        return kExitOk;
      }
      if (files_only->root.empty()) {
        std::fprintf(stderr, "keel files: --root DIR is required (the directory to serve)\n");
        return kExitUsage;
      }
      std::vector<ServiceRun> runs;
      runs.push_back(files_run(*files_only, "127.0.0.1:7003"));
      return run_services(std::move(runs), *files_server);
    };
  });
}

}  // namespace keel::cli
