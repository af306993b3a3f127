// The server flags that choose what a connection's bytes pass through before and around the
// service: TLS (--tls-cert/--tls-key) and the PROXY protocol header (--proxy-protocol).
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

#include "keel/net/stream.h"

namespace keel::cli {

struct TransportFlags {
  std::string tls_cert;
  std::string tls_key;
  double handshake_timeout_s = 10;
  bool proxy_protocol = false;
  std::vector<std::string> proxy_allow;
};

void add_transport_flags(CLI::App& cmd, TransportFlags& f);

// The stream options for one service's listeners: loads the certificate and key once (throws
// Error naming the file), composes the PROXY stage around TLS, and logs connections closed
// before they opened as warnings naming the service, the peer and the reason.
StreamOptions stream_options(const TransportFlags& f, const std::string& service_name);

}  // namespace keel::cli
