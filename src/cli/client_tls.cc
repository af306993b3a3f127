#include "cli/client_tls.h"

namespace keel::cli {
namespace {

// The host part of "HOST:PORT" / "[V6]:PORT": the name the server's certificate must carry.
std::string host_of(const std::string& target) {
  if (!target.empty() && target[0] == '[') return target.substr(1, target.find(']') - 1);
  return target.substr(0, target.rfind(':'));
}

}  // namespace

void add_client_tls_flags(CLI::App& cmd, ClientTlsFlags& f) {
  cmd.add_flag("--tls", f.tls, "Speak TLS (1.2+) to the server");
  auto* ca = cmd.add_option("--ca", f.ca_file,
                            "--tls: trust the CA certificates in this PEM file (default: the "
                            "system's trust store)")
                 ->check(CLI::ExistingFile);
  auto* insecure =
      cmd.add_flag("--insecure", f.insecure, "--tls: accept any server certificate (testing only)");
  ca->excludes(insecure);
  cmd.add_option("--sni", f.sni,
                 "--tls: server name to send and verify (default: the endpoint's host)");
}

std::shared_ptr<const TlsContext> client_tls_context(const ClientTlsFlags& f,
                                                     const std::string& target_text,
                                                     const Endpoint& target) {
  if (!f.tls) return nullptr;
  TlsClientOptions o;
  o.ca_file = f.ca_file;
  o.verify = !f.insecure;
  o.server_name = !f.sni.empty() ? f.sni : target.is_unix() ? std::string() : host_of(target_text);
  return TlsContext::client(o);
}

}  // namespace keel::cli
