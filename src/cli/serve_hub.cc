#include "cli/serve_hub.h"

namespace keel::cli {
namespace {

void add_max_held(CLI::App& cmd, HubFlags& f) {
  cmd.add_option("--max-held-bytes", f.max_held_bytes,
                 "Hub: bytes held per parked client (or on their way to a slow operator) before "
                 "keel stops reading from it, so TCP pushes back; nothing is dropped")
      ->check(CLI::Range(size_t{1}, size_t{1} << 30))
      ->capture_default_str();
}

}  // namespace

void add_hub_flags(CLI::App& cmd, HubFlags& f) {
  cmd.add_option("--framing", f.framing,
                 "Hub: 'lines' (LF or CRLF), 'length' (4-byte BE + payload) or 'binary' (raw "
                 "bytes): how operator messages are framed to clients")
      ->check(CLI::IsMember({"lines", "length", "binary"}))
      ->capture_default_str();
  cmd.add_flag("--binary", f.binary,
               "Hub: raw bytes both ways, no greeting (the same as --framing binary)");
  add_max_held(cmd, f);
  add_cluster_flags(cmd, f.cluster,
                    "the operator's view of every node's clients (keel ctl list --cluster, send "
                    "and kick NODE/ID)");
}

void add_serve_hub_flags(CLI::App& serve, HubFlags& f) {
  serve
      .add_option("--hub-framing", f.framing,
                  "Hub: 'lines', 'length' or 'binary' (as keel hub --framing)")
      ->check(CLI::IsMember({"lines", "length", "binary"}))
      ->capture_default_str();
  add_max_held(serve, f);
}

hub::HubOptions hub_options(const HubFlags& f) {
  hub::HubOptions o;
  o.framing = f.binary ? hub::HubFraming::binary : hub::parse_framing(f.framing);
  o.max_held_bytes = f.max_held_bytes;
  return o;
}

}  // namespace keel::cli
