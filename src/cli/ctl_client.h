// keel ctl's side of the admin protocol (docs/protocols.md, "Admin protocol"), shared by the
// one-shot commands, the console and the streaming ones (watch): one connection to the admin
// endpoint, requests built from what the operator typed, replies printed for a person.
// Thread safety: an AdminClient is used by one thread; the free functions are pure.
#pragma once

#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "keel/net/endpoint.h"
#include "keel/net/socket.h"

namespace keel::cli {

// How keel ctl reaches the admin endpoint (its flags).
struct CtlOptions {
  std::string admin;  // empty: default_admin_endpoint()
  std::string token_file;
  bool json = false;
  double timeout_s = 5;
};

// One command as the operator gave it, before it becomes a request.
struct CtlCommand {
  std::string cmd;                 // list, send, broadcast, kick, stats
  std::string target;              // send: ID or ADDR; kick: ID
  std::vector<std::string> words;  // send/broadcast: TEXT...; kick: REASON...
  std::string room;
  std::string service;
  bool cluster = false;  // list, stats: every node of the cluster
};

// The request for a command, or nullopt with a usage problem in *problem.
std::optional<nlohmann::ordered_json> build_request(const CtlCommand& c, std::string* problem);

// The outcome of a request: code is one of the kExit* statuses; reply and line are set once a
// reply arrived (also for {"ok":false}); error says what went wrong when code is not kExitOk.
struct CtlResult {
  int code = 0;
  std::string line;
  nlohmann::ordered_json reply;
  std::string error;
};

// Prints a result as keel ctl does: the reply (rendered, or as it is with --json) on out,
// "keel ctl: <error>" on err. Returns result.code.
int print_result(const std::string& cmd, const CtlResult& result, bool json, std::FILE* out,
                 std::FILE* err);

class AdminClient {
 public:
  explicit AdminClient(CtlOptions options);

  // Connects if not connected, sends req (with the token) and waits up to --timeout for its
  // reply. A connection that broke is dropped: the next request connects again.
  CtlResult request(nlohmann::ordered_json req);

  // For streaming requests (watch): sends req on a connection of its own making, which then
  // belongs to the caller through next_line(). kExitOk or a failure with its error.
  CtlResult open_stream(nlohmann::ordered_json req);
  // The next line of a stream. Waits without limit, but returns ECANCELED as soon as
  // cancel_fd (if >= 0) becomes readable. 0, ECANCELED, EPIPE (closed), EMSGSIZE or an errno.
  int next_line(std::string& line, int cancel_fd);

  void disconnect() noexcept;
  const CtlOptions& options() const noexcept { return options_; }

 private:
  int connect(std::chrono::steady_clock::time_point deadline, std::string& error);
  // The token file's first line, added to each request (read once).
  bool add_token(nlohmann::ordered_json& req, std::string& error);

  CtlOptions options_;
  std::optional<std::string> token_;
  Endpoint endpoint_;
  Socket socket_;
  std::string pending_;  // bytes read past the last line
};

// The admin endpoint keel ctl talks to: --admin, else the default.
std::string admin_endpoint_text(const CtlOptions& options);

}  // namespace keel::cli
