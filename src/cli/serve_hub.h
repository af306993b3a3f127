// The hub's flags (keel hub, and the hub part of keel serve) and the service they describe.
// Thread safety: call from the main thread while parsing the command line.
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

#include "cli/cluster_flags.h"
#include "services/hub/hub_service.h"

namespace keel::cli {

struct HubFlags {
  std::vector<std::string> listen;
  std::string framing = "lines";
  bool binary = false;  // keel hub --binary: the same as --framing binary
  size_t max_held_bytes = 64 * 1024;
  ClusterFlags cluster;  // keel hub --redis (keel serve's hub shares the chat's node)
};

// Output bytes a hub client may leave unread (operator text) before it is disconnected as slow.
inline constexpr size_t kHubMaxQueuedBytes = 1 << 20;

// keel hub: --framing, --binary, --max-held-bytes.
void add_hub_flags(CLI::App& cmd, HubFlags& f);
// keel serve: --hub-framing (lines, length or binary) and --max-held-bytes (--hub is serve's).
void add_serve_hub_flags(CLI::App& serve, HubFlags& f);
hub::HubOptions hub_options(const HubFlags& f);

}  // namespace keel::cli
