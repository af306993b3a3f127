#include "cli/client_tls.h"

#include <errno.h>
#include <poll.h>
#include <sys/socket.h>

#include <chrono>

#include "keel/error.h"

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

int connect_with_timeout(const Socket& s, const Endpoint& ep, int timeout_ms) {
  if (::connect(s.fd(), ep.sockaddr_ptr(), ep.sockaddr_len()) == 0) return 0;
  if (errno != EINPROGRESS && errno != EINTR) return errno;
  pollfd p{s.fd(), POLLOUT, 0};
  int rc;
  do {
    rc = ::poll(&p, 1, timeout_ms);
  } while (rc < 0 && errno == EINTR);
  if (rc == 0) return ETIMEDOUT;
  return s.take_error();
}

std::string tls_handshake(Stream& tls, const Socket& sock, const Endpoint& ep, int timeout_ms) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    Stream::Step step = tls.open(sock.fd(), ep);
    if (step == Stream::Step::done) return {};
    if (step == Stream::Step::failed) return tls.error_detail();
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    pollfd p{sock.fd(), static_cast<short>(step == Stream::Step::want_read ? POLLIN : POLLOUT), 0};
    int rc = left.count() > 0 ? ::poll(&p, 1, static_cast<int>(left.count())) : 0;
    if (rc == 0) return "TLS handshake: timed out after " + std::to_string(timeout_ms) + " ms";
    if (rc < 0 && errno != EINTR) return "poll: " + errno_text(errno);
  }
}

}  // namespace keel::cli
