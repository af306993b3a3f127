// The operator console's commands (cli/ctl_console_session.h): one line in, the same output as
// the one-shot keel ctl subcommands out (print_result), plus help, watch, attach and quit.
#include "cli/ctl_console_session.h"

#include <algorithm>
#include <set>

#include "admin/admin_protocol.h"
#include "cli/commands.h"

namespace keel::cli {
namespace {

using Json = nlohmann::ordered_json;

constexpr const char* kHelp =
    "commands:\n"
    "  list                                   connected clients\n"
    "  stats                                  uptime, memory, per-service counters\n"
    "  send ID|ADDR|NICK TEXT                 one line of text to one client\n"
    "  broadcast [--room R] [--service S] TEXT  one line to many clients\n"
    "  kick ID|NICK [REASON]                  disconnect a client\n"
    "  watch ID|ADDR|NICK                     follow a client's traffic (Ctrl-C stops)\n"
    "  attach ID|ADDR|NICK                    talk with a hub client\n"
    "  help                                   this text\n"
    "  quit                                   leave (or Ctrl-D)\n"
    "Tab completes commands, ids, addresses and nicks; Up recalls history.\n";

const std::vector<std::string> kCommands = {"attach", "broadcast", "help",  "kick", "list",
                                            "quit",   "send",      "stats", "watch"};

bool is_address(const std::string& t) {
  return t.find(':') != std::string::npos || t.starts_with("unix");
}

}  // namespace

ConsoleWords split_console_line(const std::string& line) {
  ConsoleWords w;
  size_t i = 0;
  for (;;) {
    i = line.find_first_not_of(" \t\r", i);
    if (i == std::string::npos) break;
    size_t end = line.find_first_of(" \t\r", i);
    std::string rest = line.substr(i);
    while (!rest.empty() && (rest.back() == '\r' || rest.back() == ' ' || rest.back() == '\t'))
      rest.pop_back();
    w.rest.push_back(std::move(rest));
    w.words.push_back(line.substr(i, end == std::string::npos ? std::string::npos : end - i));
    if (end == std::string::npos) break;
    i = end;
  }
  return w;
}

bool parse_console_command(const ConsoleWords& w, CtlCommand& out, std::string* problem) {
  out = CtlCommand{};
  const auto& words = w.words;
  if (words.empty()) return false;
  out.cmd = words[0];
  if (out.cmd == "list" || out.cmd == "stats") {
    if (words.size() > 1) *problem = out.cmd + " takes no arguments";
  } else if (out.cmd == "send") {
    if (words.size() < 3) {
      *problem = "usage: send ID|ADDR TEXT";
    } else {
      out.target = words[1];
      out.words = {w.rest[2]};
    }
  } else if (out.cmd == "kick") {
    if (words.size() < 2) *problem = "usage: kick ID [REASON]";
    if (words.size() >= 2) out.target = words[1];
    if (words.size() > 2) out.words = {w.rest[2]};
  } else if (out.cmd == "watch" || out.cmd == "attach") {
    if (words.size() != 2) *problem = "usage: " + out.cmd + " ID|ADDR";
    if (words.size() == 2) out.target = words[1];
  } else if (out.cmd == "broadcast") {
    size_t i = 1;
    while (i < words.size() && (words[i] == "--room" || words[i] == "--service")) {
      if (i + 1 >= words.size()) {
        *problem = words[i] + " needs a value";
        return false;
      }
      (words[i] == "--room" ? out.room : out.service) = words[i + 1];
      i += 2;
    }
    if (i >= words.size())
      *problem = "usage: broadcast [--room R] [--service S] TEXT";
    else
      out.words = {w.rest[i]};
  } else {
    *problem = "unknown command '" + out.cmd + "' (try help)";
  }
  return problem->empty();
}

void ConsoleSession::refresh_names(bool force) {
  auto now = std::chrono::steady_clock::now();
  if (!force && names_valid_ && now - names_at_ < kNamesMaxAge) return;
  CtlResult r = client_.request(Json{{"cmd", "list"}});
  names_at_ = now;
  names_valid_ = r.code == kExitOk;
  ids_.clear(), addresses_.clear(), nicks_.clear(), rooms_.clear(), services_.clear();
  nick_ids_.clear();
  if (!names_valid_) return;
  std::set<std::string> rooms, services;
  auto clients = r.reply.find("clients");
  if (clients == r.reply.end() || !clients->is_array()) return;
  for (const Json& c : *clients) {
    if (!c.is_object()) continue;
    auto str = [&](const char* key) {
      auto it = c.find(key);
      return it != c.end() && it->is_string() ? it->get<std::string>() : std::string();
    };
    std::string id = c.contains("id") ? c["id"].dump() : std::string();
    if (!id.empty()) ids_.push_back(id);
    if (auto peer = str("peer"); !peer.empty()) addresses_.push_back(peer);
    if (auto nick = str("nick"); !nick.empty()) {
      nicks_.push_back(nick);
      nick_ids_.emplace_back(nick, id);
    }
    if (auto room = str("room"); !room.empty()) rooms.insert(room);
    if (auto service = str("service"); !service.empty()) services.insert(service);
  }
  rooms_.assign(rooms.begin(), rooms.end());
  services_.assign(services.begin(), services.end());
}

bool ConsoleSession::resolve_target(std::string& target) {
  if (admin::parse_client_id(target) || is_address(target)) return true;
  refresh_names(true);
  std::vector<std::string> ids;
  for (const auto& [nick, id] : nick_ids_)
    if (nick == target) ids.push_back(id);
  if (ids.size() == 1) {
    target = ids.front();
    return true;
  }
  std::fprintf(stderr, "keel ctl: %s\n",
               ids.empty() ? ("no client with id, address or nick '" + target + "'").c_str()
                           : ("nick '" + target + "' is used by " + std::to_string(ids.size()) +
                              " clients: use an id")
                                 .c_str());
  return false;
}

std::vector<std::string> ConsoleSession::candidates(const std::vector<std::string>& before) {
  if (before.empty()) return kCommands;
  const std::string& cmd = before[0];
  const std::string& last = before.back();
  if (cmd == "broadcast") {
    refresh_names(false);
    if (last == "--room") return rooms_;
    if (last == "--service") return services_;
    if (before.size() == 1 || before[before.size() - 2] == "--room" ||
        before[before.size() - 2] == "--service")
      return {"--room", "--service"};
    return {};
  }
  bool takes_client = cmd == "send" || cmd == "kick" || cmd == "watch" || cmd == "attach";
  if (!takes_client || before.size() != 1) return {};
  refresh_names(false);
  std::vector<std::string> all = ids_;
  if (cmd != "kick") all.insert(all.end(), addresses_.begin(), addresses_.end());
  all.insert(all.end(), nicks_.begin(), nicks_.end());
  return all;
}

int ConsoleSession::execute(const std::string& line, bool* quit) {
  ConsoleWords w = split_console_line(line);
  if (w.words.empty() || w.words[0].starts_with("#")) return kExitOk;
  const std::string& first = w.words[0];
  if (first == "quit" || first == "exit") {
    *quit = true;
    return kExitOk;
  }
  if (first == "help" || first == "?") {
    std::fputs(kHelp, stdout);
    std::fflush(stdout);
    return kExitOk;
  }
  CtlCommand cmd;
  std::string problem;
  if (!parse_console_command(w, cmd, &problem)) {
    std::fprintf(stderr, "keel ctl: %s\n", problem.c_str());
    return kExitUsage;
  }
  if (!cmd.target.empty() && !resolve_target(cmd.target)) return kExitFailure;
  names_valid_ = false;  // what follows may change who is connected
  if (cmd.cmd == "attach") return run_console_attach(client_.options(), cmd.target, terminal_);
  if (cmd.cmd == "watch") {
    AdminClient stream(client_.options());
    return run_watch(stream, cmd.target, stdout, stderr);
  }
  auto req = build_request(cmd, &problem);
  if (!req) {
    std::fprintf(stderr, "keel ctl: %s\n", problem.c_str());
    return kExitUsage;
  }
  return print_result(cmd.cmd, client_.request(std::move(*req)), client_.options().json, stdout,
                      stderr);
}

}  // namespace keel::cli
