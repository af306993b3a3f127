#include "cli/transport_flags.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <memory>
#include <utility>

#include "keel/error.h"
#include "keel/net/tls.h"

namespace keel::cli {

void add_transport_flags(CLI::App& cmd, TransportFlags& f) {
  auto* cert = cmd.add_option("--tls-cert", f.tls_cert,
                              "TLS: PEM certificate (chain) for the service's listeners; needs "
                              "--tls-key. TLS 1.2+ only")
                   ->check(CLI::ExistingFile);
  auto* key = cmd.add_option("--tls-key", f.tls_key, "TLS: PEM private key for --tls-cert")
                  ->check(CLI::ExistingFile);
  cert->needs(key);
  key->needs(cert);
  cmd.add_option("--tls-handshake-timeout", f.handshake_timeout_s,
                 "Seconds a new connection may take for its TLS handshake and PROXY header "
                 "before it is closed")
      ->check(CLI::Range(0.001, 3600.0))
      ->capture_default_str();
}

StreamOptions stream_options(const TransportFlags& f, const std::string& service_name) {
  StreamOptions o;
  o.open_timeout = std::chrono::milliseconds(static_cast<int64_t>(f.handshake_timeout_s * 1000));
  if (!f.tls_cert.empty()) {
    std::shared_ptr<const TlsContext> tls = TlsContext::server({f.tls_cert, f.tls_key});
    o.factory = TlsContext::factory(std::move(tls));
  }
  o.on_open_failed = [service_name](const Endpoint& peer, const std::string& reason) {
    spdlog::warn("{}: {} closed before it opened: {}", service_name, peer.to_string(), reason);
  };
  return o;
}

}  // namespace keel::cli
