// keel: runs ready services (serve, echo) and client tools (cat, bench, ctl, doctor). Parses the
// command line, runs the chosen action, and turns any set-up error into one line on stderr.
#include <errno.h>
#include <signal.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <cstdio>

#include "cli/commands.h"
#include "cli/config_file.h"
#include "keel/error.h"

namespace {

std::string hint_for(const keel::Error& e) {
  std::string_view what = e.what();
  switch (e.errno_value()) {
    case EADDRINUSE:
      if (what.starts_with("admin"))
        return " (another keel uses that admin endpoint: stop it, or choose another --admin or "
               "--admin none)";
      return " (another process is listening there: stop it or choose another --listen)";
    case EACCES:
      if (what.starts_with("bind")) return " (ports below 1024 need root or CAP_NET_BIND_SERVICE)";
      return {};
    case EADDRNOTAVAIL: return " (that address is not on this machine)";
    default: return {};
  }
}

}  // namespace

int main(int argc, char** argv) {
  // Sockets use MSG_NOSIGNAL; this covers stdout being a closed pipe (keel cat | head).
  ::signal(SIGPIPE, SIG_IGN);
  auto logger = spdlog::stderr_color_mt("keel");
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
  spdlog::set_default_logger(logger);

  CLI::App app{"keel: robust, efficient TCP servers and the tools around them", "keel"};
  app.set_version_flag("--version", std::string("keel ") + KEEL_VERSION);
  app.require_subcommand(1);
  keel::cli::Action action;
  keel::cli::add_serve_commands(app, action);
  keel::cli::add_cat_command(app, action);
  keel::cli::add_bench_command(app, action);
  keel::cli::add_ctl_command(app, action);
  keel::cli::add_exec_command(app, action);
  keel::cli::add_doctor_command(app, action);
  keel::cli::add_files_client_commands(app, action);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? keel::cli::kExitOk : keel::cli::kExitUsage;
  } catch (const keel::cli::ConfigError& e) {  // --config: a usage error, in a file
    std::fprintf(stderr, "keel: %s\n", e.what());
    return keel::cli::kExitUsage;
  }
  try {
    return action ? action() : keel::cli::kExitUsage;
  } catch (const keel::Error& e) {
    std::fprintf(stderr, "keel: %s%s\n", e.what(), hint_for(e).c_str());
    return keel::cli::kExitFailure;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "keel: %s\n", e.what());
    return keel::cli::kExitFailure;
  }
}
