// keel ctl: the operator's client for a running keel's admin endpoint (docs/protocols.md,
// "Admin protocol"). With a subcommand it sends one request and prints the reply; without one it
// is the operator console (ctl_console.cc), reading the same commands from a terminal or a pipe.
#include "cli/ctl.h"

#include <memory>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "cli/ctl_attach.h"
#include "cli/ctl_client.h"
#include "cli/ctl_console.h"
#include "cli/validators.h"

namespace keel::cli {
namespace {

struct CtlFlags {
  CtlOptions options;
  CtlCommand command;
};

int run_once(const CtlFlags& f) {
  AdminClient client(f.options);
  if (f.command.cmd == "watch") return run_watch(client, f.command.target, stdout, stderr);
  std::string problem;
  auto req = build_request(f.command, &problem);
  if (!req) {
    std::fprintf(stderr, "keel ctl: %s\n", problem.c_str());
    return kExitUsage;
  }
  return print_result(f.command.cmd, client.request(std::move(*req)), f.options.json, stdout,
                      stderr);
}

}  // namespace

void add_ctl_command(CLI::App& app, Action& action) {
  auto f = std::make_shared<CtlFlags>();
  CtlOptions& o = f->options;
  CtlCommand& c = f->command;
  CLI::App* ctl = app.add_subcommand(
      "ctl", "Operate a running keel through its admin endpoint (no subcommand: the console)");
  ctl->add_option("--admin", o.admin, "Admin endpoint: unix:/path or 127.0.0.1:PORT")
      ->default_str("unix:/run/keel/admin.sock as root, else unix:./keel-admin.sock");
  ctl->add_option("--token-file", o.token_file, "File holding the token (TCP admin endpoints)");
  ctl->add_flag("--json", o.json, "Print the reply JSON as it is");
  ctl->add_option("--timeout", o.timeout_s, "Seconds to wait for the connection and each reply")
      ->check(FiniteRange(0.001, 3600.0))
      ->capture_default_str();
  ctl->require_subcommand(0, 1);
  ctl->fallthrough();
  ctl->footer(
      "Without a subcommand: the operator console on a terminal (type help), or the same\n"
      "commands one per line from stdin (exit status: that of the first command that failed).\n"
      "Exit status: 0 ok, 1 the request failed or no connection could be made, 2 usage error,\n"
      "3 the connection broke before a reply, 4 no reply within --timeout.\n");
  ctl->callback([&action, f, ctl] {
    if (ctl->get_subcommands().empty()) action = [f] { return run_console(f->options); };
  });
  auto choose = [&action, f](const char* cmd) {
    return [&action, f, cmd] {
      f->command.cmd = cmd;
      action = [f] { return run_once(*f); };
    };
  };
  CLI::App* list = ctl->add_subcommand("list", "List connected clients");
  list->add_flag("--cluster", c.cluster,
                 "Every node of the cluster (--redis): ids are NODE/ID, for send and kick");
  list->callback(choose("list"));
  CLI::App* send = ctl->add_subcommand("send", "Send a line of text to one client");
  send->add_option("client", c.target,
                   "Client id (from list; NODE/ID from list --cluster) or address (127.0.0.1:5555)")
      ->required();
  send->add_option("text", c.words, "Text to send")->required();
  send->callback(choose("send"));
  CLI::App* broadcast = ctl->add_subcommand("broadcast", "Send a line of text to many clients");
  broadcast->add_option("--room", c.room, "Only the members of this room (chat)");
  broadcast->add_option("--service", c.service, "Only the clients of this service");
  broadcast->add_option("text", c.words, "Text to send")->required();
  broadcast->callback(choose("broadcast"));
  CLI::App* kick = ctl->add_subcommand("kick", "Disconnect a client (after a reason line)");
  kick->add_option("client", c.target, "Client id (from list; NODE/ID from list --cluster)")
      ->required();
  kick->add_option("reason", c.words, "Why (shown to the client by services that say so)");
  kick->callback(choose("kick"));
  CLI::App* stats = ctl->add_subcommand("stats", "Uptime, memory and per-service counters");
  stats->add_flag("--cluster", c.cluster, "Every node of the cluster (--redis), and the sums");
  stats->callback(choose("stats"));
  CLI::App* watch = ctl->add_subcommand(
      "watch", "Follow one client's traffic read-only, both directions, until it closes");
  watch->add_option("client", c.target, "Client id (from list) or address (127.0.0.1:5555)")
      ->required();
  watch->callback(choose("watch"));
  add_attach_subcommand(
      *ctl, [f] { f->command.cmd = "attach"; }, action, f->options.admin, f->options.token_file,
      f->options.timeout_s);
}

}  // namespace keel::cli
