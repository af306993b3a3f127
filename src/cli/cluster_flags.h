// --redis, --redis-password-file and --node: a chat node's cluster flags (docs/operations.md,
// "Running a cluster"), and the wiring of its backplane. Thread safety: set-up code, one thread.
#pragma once

#include <CLI/CLI.hpp>
#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "cluster/backplane.h"
#include "services/chat/chat_service.h"

namespace keel::cli {

struct ClusterFlags {
  std::string redis;                // empty: no cluster
  std::string redis_password_file;  // the password, out of the URL (and of ps and shell history)
  std::string node;                 // empty: HOSTNAME:PID
};

// shares: what the nodes share, for --redis's help.
void add_cluster_flags(CLI::App& cmd, ClusterFlags& f, const std::string& shares);
// The backplane's options for service (its keys are keel:SERVICE:...), or nullopt without
// --redis. Throws keel::Error for a bad --redis, --redis-password-file or --node.
std::optional<cluster::BackplaneOptions> backplane_options(const ClusterFlags& f,
                                                           const std::string& service);

// A chat node's backplane (not started): its events, state and lost names routed to chat, and
// a check every second for nodes silent longer than node_timeout. chat must outlive it; stop
// it after the engine, so the members' departures are published before the node's `gone`.
std::unique_ptr<cluster::Backplane> make_chat_backplane(
    chat::ChatService& chat, cluster::BackplaneOptions options,
    std::chrono::milliseconds node_timeout = std::chrono::seconds(5));
// A backplane for a service that shares nothing but the operator's requests (the hub).
std::unique_ptr<cluster::Backplane> make_plain_backplane(cluster::BackplaneOptions options);

}  // namespace keel::cli
