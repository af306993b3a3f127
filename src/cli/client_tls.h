// The client side of TLS for keel's client commands (cat, bench): --tls, --ca, --insecure, --sni.
#pragma once

#include <CLI/CLI.hpp>
#include <memory>
#include <string>

#include "keel/net/endpoint.h"
#include "keel/net/tls.h"

namespace keel::cli {

struct ClientTlsFlags {
  bool tls = false;
  std::string ca_file;
  bool insecure = false;
  std::string sni;
};

void add_client_tls_flags(CLI::App& cmd, ClientTlsFlags& f);

// The client context for target_text ("HOST:PORT"), or null without --tls. The certificate must
// name --sni, or else the endpoint's host (a name or an IP address). Throws Error on a bad CA.
std::shared_ptr<const TlsContext> client_tls_context(const ClientTlsFlags& f,
                                                     const std::string& target_text,
                                                     const Endpoint& target);

}  // namespace keel::cli
