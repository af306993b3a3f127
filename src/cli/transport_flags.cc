#include "cli/transport_flags.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <memory>
#include <utility>

#include "cli/validators.h"
#include "keel/error.h"
#include "keel/net/cidr.h"
#include "keel/net/proxy_stage.h"
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
      ->check(FiniteRange(0.001, 3600.0))
      ->capture_default_str();
  auto* proxy = cmd.add_flag(
      "--proxy-protocol", f.proxy_protocol,
      "Require a PROXY protocol header (v1 or v2, as HAProxy's send-proxy[-v2] sends) on every "
      "connection to the service's listeners; the client address in it becomes the "
      "connection's peer. A missing or malformed header closes the connection");
  cmd.add_option("--proxy-allow", f.proxy_allow,
                 "With --proxy-protocol: an address prefix (CIDR: 10.0.0.0/8, ::1/128, or one "
                 "address; repeatable) of the proxies allowed to send the header; connections "
                 "from other peers are closed. Default: any peer")
      ->check(ParsedBy([](const std::string& text) { Cidr::parse(text); }, ""))
      ->type_name("CIDR")
      ->needs(proxy);
}

StreamOptions stream_options(const TransportFlags& f, const std::string& service_name) {
  StreamOptions o;
  o.open_timeout = std::chrono::milliseconds(static_cast<int64_t>(f.handshake_timeout_s * 1000));
  if (!f.tls_cert.empty()) {
    std::shared_ptr<const TlsContext> tls = TlsContext::server({f.tls_cert, f.tls_key});
    o.factory = TlsContext::factory(std::move(tls));
  }
  if (f.proxy_protocol) {  // outside TLS: the header comes before the handshake
    ProxyPolicy policy;
    for (const std::string& text : f.proxy_allow) policy.allow.push_back(Cidr::parse(text));
    o.factory = proxy_stream_factory(std::move(policy), std::move(o.factory));
  }
  o.on_open_failed = [service_name](const Endpoint& peer, const std::string& reason) {
    spdlog::warn("{}: {} closed before it opened: {}", service_name, peer.to_string(), reason);
  };
  return o;
}

}  // namespace keel::cli
