// keel exec: one process per connection running a fixed program with the socket as its stdin
// and stdout (like tcpserver / unixserver), until SIGINT or SIGTERM, then drain.
#include "engine/exec.h"

#include <signal.h>
#include <spdlog/spdlog.h>
#include <string.h>
#include <sys/wait.h>

#include <chrono>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "admin/admin_server.h"
#include "cli/commands.h"
#include "cli/validators.h"
#include "cli/server_common.h"
#include "engine/process_core.h"
#include "keel/error.h"

namespace keel::cli {
namespace {

struct ExecFlags {
  std::vector<std::string> listen;
  size_t max_connections = 40;
  double timeout_s = 0;
  std::string stderr_mode = "log";
  double drain_timeout_s = 5.0;
  std::string admin = "none";
  std::string admin_token_file;
  std::vector<std::string> program;
};

std::chrono::milliseconds to_ms(double seconds) {
  return std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000));
}

std::string who(const ChildInfo& c) {
  return "conn " + std::to_string(c.id.value()) + " (" + c.peer.to_string() + ", pid " +
         std::to_string(c.pid) + ")";
}

// One line per child that did not end well; a clean exit, or our own drain's SIGTERM, is quiet.
void log_exit(const ChildInfo& c, int status, std::string_view why) {
  if (status == -1) {
    spdlog::warn("{}: exit status unknown (reaped elsewhere: is SIGCHLD ignored?)", who(c));
  } else if (WIFEXITED(status)) {
    if (WEXITSTATUS(status) != 0)
      spdlog::warn("{} exited with status {}", who(c), WEXITSTATUS(status));
  } else if (WIFSIGNALED(status)) {
    int sig = WTERMSIG(status);
    if (why == "drain" && sig == SIGTERM) return;
    spdlog::warn("{} killed by signal {} ({}){}{}", who(c), sig, ::strsignal(sig),
                 WCOREDUMP(status) ? ", core dumped" : "",
                 why.empty() ? std::string() : ": " + std::string(why));
  }
}

int run_exec(const ExecFlags& f) {
  sigset_t stop_signals = block_stop_signals();
  std::optional<AdminOptions> admin_opts = admin_options(f.admin, f.admin_token_file);
  ProcessCoreOptions core;
  for (const auto& text : f.listen) core.listen.push_back(Endpoint::parse(text));
  core.max_connections = f.max_connections;
  core.idle_timeout = to_ms(f.timeout_s);
  core.unix_mode = 0600;  // running commands for anyone who can connect is never the default
  core.on_exit = log_exit;
  core.on_stderr_line = [](const ChildInfo& c, std::string_view line) {
    spdlog::info("conn {}: {}", c.id.value(), line);
  };
  ExecOptions exec;
  exec.argv = f.program;
  exec.stderr_mode = f.stderr_mode == "client" ? ExecStderr::client
                     : f.stderr_mode == "null" ? ExecStderr::null
                                               : ExecStderr::log;

  ExecEngine server(std::move(core), std::move(exec));
  server.start();
  std::unique_ptr<AdminServer> admin;
  if (admin_opts) {
    admin = std::make_unique<AdminServer>(*admin_opts, std::vector<Engine*>{&server});
    admin->start();
  }
  for (const Endpoint& ep : server.endpoints())
    spdlog::info("exec listening on {} ({}, at most {} at a time)", ep.to_string(),
                 f.program.front(),
                 f.max_connections ? std::to_string(f.max_connections) : "any number");
  if (admin)
    spdlog::info("admin listening on {} (keel ctl --admin {})", admin->endpoint().to_string(),
                 admin->endpoint().to_string());

  int signal_number = 0;
  sigwait(&stop_signals, &signal_number);
  size_t open = server.connection_count();
  spdlog::info("{}: no longer accepting; SIGTERM to {} child process{} (up to {} s)",
               strsignal(signal_number), open, open == 1 ? "" : "es", f.drain_timeout_s);
  if (admin) admin->stop();
  size_t killed = server.drain(to_ms(f.drain_timeout_s));
  server.stop();
  if (killed)
    spdlog::warn("stopped; {} child process{} did not exit in time and got SIGKILL", killed,
                 killed == 1 ? "" : "es");
  else
    spdlog::info("stopped");
  return kExitOk;
}

}  // namespace

void add_exec_command(CLI::App& app, Action& action) {
  auto f = std::make_shared<ExecFlags>();
  CLI::App* cmd = app.add_subcommand(
      "exec",
      "Run PROGRAM once per connection with the socket as its stdin and stdout (tcpserver-style "
      "environment). Usage: keel exec --listen EP [options] -- PROGRAM [ARGS...] (PROGRAM is run "
      "with execvp, no shell)");
  // One value per --listen, collected as each is parsed: CLI11 2.1 lets a list option swallow
  // the "--" before PROGRAM, and PROGRAM's own options would then be read as keel's.
  cmd->add_option_function<std::string>(
         "-l,--listen", [f](const std::string& ep) { f->listen.push_back(ep); },
         "Endpoint to listen on (repeatable): 127.0.0.1:PORT or unix:/path (mode 0600)")
      ->trigger_on_parse()
      ->required();
  cmd->add_option("--max-connections", f->max_connections,
                  "At most this many programs at once; further clients wait in the listen "
                  "backlog until one exits (0 = no cap)")
      ->capture_default_str();
  cmd->add_option("--timeout", f->timeout_s,
                  "Kill a program whose connection moved no data either way for this many "
                  "seconds (TCP only; 0 = never)")
      ->check(FiniteRange(0.0, 86400.0))
      ->capture_default_str();
  cmd->add_option("--stderr", f->stderr_mode,
                  "Program's stderr: log (each line in keel's log, with the connection id), "
                  "client (the socket) or null")
      ->check(CLI::IsMember({"log", "client", "null"}))
      ->capture_default_str();
  cmd->add_option("--drain-timeout", f->drain_timeout_s,
                  "On SIGINT/SIGTERM: seconds between SIGTERM and SIGKILL to the programs")
      ->check(FiniteRange(0.0, 3600.0))
      ->capture_default_str();
  cmd->add_option("--admin", f->admin,
                  "Operator endpoint for `keel ctl` (list shows pid and peer; kick sends "
                  "SIGTERM): unix:/path, 127.0.0.1:PORT with --admin-token-file, default, or none")
      ->capture_default_str();
  cmd->add_option("--admin-token-file", f->admin_token_file,
                  "File whose first line is the token TCP admin clients must send");
  // After "--" everything is PROGRAM and its arguments, even words that look like options.
  cmd->add_option("program", f->program, "PROGRAM [ARGS...], after --; run with execvp, no shell")
      ->required();
  cmd->callback([&action, f] { action = [f] { return run_exec(*f); }; });
}

}  // namespace keel::cli
