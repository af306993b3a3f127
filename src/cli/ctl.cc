// keel ctl: the operator's client for a running keel's admin endpoint (docs/protocols.md,
// "Admin protocol"). One request line out, one reply line in, with poll(2) timeouts like keel cat.
#include "cli/ctl.h"

#include <errno.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "admin/admin_protocol.h"
#include "admin/admin_server.h"
#include "cli/commands.h"
#include "cli/ctl_attach.h"
#include "cli/validators.h"
#include "keel/error.h"
#include "keel/net/endpoint.h"
#include "keel/net/socket.h"

namespace keel::cli {
namespace {

using Json = nlohmann::ordered_json;
using SteadyClock = std::chrono::steady_clock;

// A reply longer than this is not from keel.
constexpr size_t kMaxReplyBytes = 256u << 20;

struct CtlFlags {
  std::string admin;  // empty: default_admin_endpoint()
  std::string token_file;
  bool json = false;
  double timeout_s = 5;
  std::string cmd;
  std::string target;              // send: ID or ADDR; kick: ID
  std::vector<std::string> words;  // send/broadcast: TEXT...; kick: REASON...
  std::string room;
  std::string service;
};

int fail(int code, const std::string& message) {
  std::fprintf(stderr, "keel ctl: %s\n", message.c_str());
  return code;
}

std::string join(const std::vector<std::string>& words) {
  std::string out;
  for (const auto& w : words) out += (out.empty() ? "" : " ") + w;
  return out;
}

// Milliseconds left until deadline, at least 0.
int left_ms(SteadyClock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - SteadyClock::now());
  return static_cast<int>(std::max<int64_t>(left.count(), 0));
}

// 0, ETIMEDOUT, or the errno of a failed poll/socket call.
int wait_for(int fd, short events, SteadyClock::time_point deadline) {
  for (;;) {
    pollfd p{fd, events, 0};
    int rc = ::poll(&p, 1, left_ms(deadline));
    if (rc > 0) return 0;
    if (rc == 0) return ETIMEDOUT;
    if (errno != EINTR) return errno;
  }
}

int connect_by(const Socket& s, const Endpoint& ep, SteadyClock::time_point deadline) {
  if (::connect(s.fd(), ep.sockaddr_ptr(), ep.sockaddr_len()) == 0) return 0;
  if (errno != EINPROGRESS && errno != EINTR && errno != EAGAIN) return errno;
  if (int err = wait_for(s.fd(), POLLOUT, deadline)) return err;
  return s.take_error();
}

int send_all(int fd, std::string_view data, SteadyClock::time_point deadline) {
  while (!data.empty()) {
    if (int err = wait_for(fd, POLLOUT, deadline)) return err;
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno != EAGAIN && errno != EINTR) return errno;
    if (n > 0) data.remove_prefix(static_cast<size_t>(n));
  }
  return 0;
}

// Reads up to the first "\n" (not included). 0, ETIMEDOUT, EPIPE for a close before the end of
// the line, EMSGSIZE, or a socket errno.
int read_line(int fd, std::string& line, SteadyClock::time_point deadline) {
  char buf[65536];
  ReplyLine reply;
  for (;;) {
    if (reply.size() > kMaxReplyBytes) return EMSGSIZE;
    if (int err = wait_for(fd, POLLIN, deadline)) return err;
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n == 0) return EPIPE;
    if (n < 0 && errno != EAGAIN && errno != EINTR) return errno;
    if (n > 0 && reply.append(std::string_view(buf, static_cast<size_t>(n)))) {
      line = reply.line();
      return 0;
    }
  }
}

// The request for the chosen subcommand, or a usage problem in *problem.
Json build_request(const CtlFlags& f, std::string* problem) {
  Json req{{"cmd", f.cmd}};
  if (f.cmd == "send") {
    req["to"] = f.target;
    req["text"] = join(f.words);
  } else if (f.cmd == "broadcast") {
    req["text"] = join(f.words);
    if (!f.room.empty()) req["room"] = f.room;
    if (!f.service.empty()) req["service"] = f.service;
  } else if (f.cmd == "kick") {
    auto id = admin::parse_client_id(f.target);
    if (!id) *problem = "kick: the client id is digits (see keel ctl list), not '" + f.target + "'";
    req["id"] = id.value_or(0);
    if (!f.words.empty()) req["reason"] = join(f.words);
  }
  return req;
}

int run_ctl(const CtlFlags& f) {
  std::string problem;
  Json req = build_request(f, &problem);
  if (!problem.empty()) return fail(kExitUsage, problem);
  if (!f.token_file.empty()) {
    // The first line, as keel reads --admin-token-file.
    std::ifstream in(f.token_file);
    if (!in) return fail(kExitFailure, "token file " + f.token_file + ": " + errno_text(errno));
    std::string token;
    if (!std::getline(in, token) || token.empty())
      return fail(kExitFailure, "token file " + f.token_file + ": empty");
    req["token"] = token;
  }
  std::string admin = f.admin.empty() ? default_admin_endpoint() : f.admin;
  Endpoint ep;
  try {
    ep = Endpoint::parse(admin);
  } catch (const Error& e) {
    return fail(kExitFailure, e.what());
  }
  auto deadline =
      SteadyClock::now() + std::chrono::milliseconds(static_cast<int64_t>(f.timeout_s * 1000));
  Socket sock = Socket::stream_for(ep);
  if (int err = connect_by(sock, ep, deadline))
    return fail(kExitFailure, "connect " + ep.to_string() + ": " + errno_text(err) +
                                  " (is keel running with --admin?)");
  std::string line;
  int err = send_all(sock.fd(), req.dump(-1, ' ', false, Json::error_handler_t::replace) + "\n",
                     deadline);
  if (!err) err = read_line(sock.fd(), line, deadline);
  if (err == ETIMEDOUT)
    return fail(kExitTimeout,
                ep.to_string() + ": no reply within " + std::to_string(f.timeout_s) + " s");
  if (err == EPIPE) return fail(kExitBroken, ep.to_string() + ": closed without a reply");
  if (err) return fail(kExitBroken, ep.to_string() + ": " + errno_text(err));

  Json reply = Json::parse(line, nullptr, false);
  if (reply.is_discarded() || !reply.is_object())
    return fail(kExitFailure, ep.to_string() + ": reply is not a JSON object");
  if (f.json) std::printf("%s\n", line.c_str());
  auto ok = reply.find("ok");
  if (ok == reply.end() || *ok != true) {
    auto error = reply.find("error");
    return fail(kExitFailure, error != reply.end() && error->is_string()
                                  ? error->get<std::string>()
                                  : std::string("request failed"));
  }
  if (!f.json) std::fputs(render_reply(f.cmd, reply).c_str(), stdout);
  return kExitOk;
}

}  // namespace

void add_ctl_command(CLI::App& app, Action& action) {
  auto f = std::make_shared<CtlFlags>();
  CLI::App* ctl = app.add_subcommand("ctl", "Operate a running keel through its admin endpoint");
  ctl->add_option("--admin", f->admin, "Admin endpoint: unix:/path or 127.0.0.1:PORT")
      ->default_str("unix:/run/keel/admin.sock as root, else unix:./keel-admin.sock");
  ctl->add_option("--token-file", f->token_file, "File holding the token (TCP admin endpoints)");
  ctl->add_flag("--json", f->json, "Print the reply JSON as it is");
  ctl->add_option("--timeout", f->timeout_s, "Seconds to wait for the connection and the reply")
      ->check(FiniteRange(0.001, 3600.0))
      ->capture_default_str();
  ctl->require_subcommand(1);
  ctl->fallthrough();
  ctl->footer(
      "Exit status: 0 ok, 1 the request failed or no connection could be made, 2 usage error,\n"
      "3 the connection broke before a reply, 4 no reply within --timeout.\n");
  auto choose = [&action, f](const char* cmd) {
    return [&action, f, cmd] {
      f->cmd = cmd;
      action = [f] { return run_ctl(*f); };
    };
  };
  ctl->add_subcommand("list", "List connected clients")->callback(choose("list"));
  CLI::App* send = ctl->add_subcommand("send", "Send a line of text to one client");
  send->add_option("client", f->target, "Client id (from list) or address (127.0.0.1:5555)")
      ->required();
  send->add_option("text", f->words, "Text to send")->required();
  send->callback(choose("send"));
  CLI::App* broadcast = ctl->add_subcommand("broadcast", "Send a line of text to many clients");
  broadcast->add_option("--room", f->room, "Only the members of this room (chat)");
  broadcast->add_option("--service", f->service, "Only the clients of this service");
  broadcast->add_option("text", f->words, "Text to send")->required();
  broadcast->callback(choose("broadcast"));
  CLI::App* kick = ctl->add_subcommand("kick", "Disconnect a client (after a reason line)");
  kick->add_option("client", f->target, "Client id (from list)")->required();
  kick->add_option("reason", f->words, "Why (shown to the client by services that say so)");
  kick->callback(choose("kick"));
  ctl->add_subcommand("stats", "Uptime, memory and per-service counters")
      ->callback(choose("stats"));
  add_attach_subcommand(
      *ctl, [f] { f->cmd = "attach"; }, action, f->admin, f->token_file, f->timeout_s);
}

}  // namespace keel::cli
