// How keel's client commands (cat, get, put, ls, bench) reach a server: connect within a timeout,
// and the client side of TLS: --tls, --ca, --insecure, --sni.
#pragma once

#include <CLI/CLI.hpp>
#include <memory>
#include <string>

#include "keel/net/endpoint.h"
#include "keel/net/socket.h"
#include "keel/net/stream.h"
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

// Connects s to ep within timeout_ms. Returns 0 when connected, else an errno (ETIMEDOUT for
// the timeout).
int connect_with_timeout(const Socket& s, const Endpoint& ep, int timeout_ms);
// Runs the TLS handshake within timeout_ms. Returns "" when done, else the reason it failed.
std::string tls_handshake(Stream& tls, const Socket& sock, const Endpoint& ep, int timeout_ms);

}  // namespace keel::cli
