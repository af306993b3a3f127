// keel ctl attach ID|ADDR: an interactive session with one hub client over the admin endpoint
// (docs/protocols.md, "Sessions"; docs/operations.md, "Hub"). What the client sent while
// parked is printed first, then what it sends live (escaped as AttachView shows it); each line
// read from the input goes to the client; end of input or a line "~." detaches (the client is
// parked again); the client leaving ends the session.
// Thread safety: one session per thread; the functions keep no state between calls.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <optional>
#include <string>

#include "keel/net/endpoint.h"
#include "keel/net/socket.h"

namespace keel::cli {

// A connection to a running keel's admin endpoint, as keel ctl opens it.
struct CtlConnection {
  Socket socket;
  Endpoint endpoint;
  std::optional<std::string> token;  // sent with every request (TCP admin endpoints)
};

// Connects to admin (empty: default_admin_endpoint()) within timeout_s, reading the token from
// token_file (if not empty) as keel ctl does. nullopt with *error set on failure.
std::optional<CtlConnection> connect_ctl(const std::string& admin, const std::string& token_file,
                                         double timeout_s, std::string* error);

// The session with target (a client id or address): the client's bytes go to out_fd, lines
// from in_fd go to the client, and what happens to the session ("attached ...", "detached",
// "client 17 left: ...") is told on msg_fd, each line starting "keel: ". Returns the exit
// status: 0 after a detach or when the client left, 1 when the attach is refused (the reason
// on msg_fd, "keel ctl: ..."), 3 when the admin connection breaks.
// operator_name: shown to other operators (who holds the client); empty: $USER.
int run_attach(const CtlConnection& conn, const std::string& target, int in_fd, int out_fd,
               int msg_fd, const std::string& operator_name = {});

// Adds `attach ID|ADDR [--operator NAME]` to keel ctl; admin, token_file and timeout_s are
// ctl's own flags (they outlive the parse).
void add_attach_subcommand(CLI::App& ctl, std::function<void()> chosen,
                           std::function<int()>& action, const std::string& admin,
                           const std::string& token_file, const double& timeout_s);

}  // namespace keel::cli
