// TLS over any stream connection, with OpenSSL 3: a TlsContext holds the configuration (server
// certificate and key, or a client's trust and name checks) and makes one Stream per connection.
// The handshake is the stream's pre-open stage; reads, writes and the handshake never block.
//
// Policy: TLS 1.2 and 1.3 only; forward-secret AEAD ciphers for 1.2 (OpenSSL's 1.3 defaults);
// renegotiation refused; no compression; SNI ignored by servers. A peer's TCP FIN without
// close_notify ends the stream like a plain FIN. Our shutdown_write() sends close_notify, then
// FIN, and reading goes on until the peer's close_notify (a TLS half-close).
// Thread safety: a TlsContext is immutable after creation and may be shared by every thread;
// each Stream it makes belongs to one connection's thread.
#pragma once

#include <memory>
#include <string>

#include "keel/net/stream.h"

struct ssl_ctx_st;

namespace keel {

struct TlsServerOptions {
  std::string cert_file;  // PEM: the certificate, then any intermediates
  std::string key_file;   // PEM private key
};

struct TlsClientOptions {
  // PEM file of trusted CAs; empty: the system's default trust store.
  std::string ca_file;
  // false (--insecure): accept any certificate. For testing only.
  bool verify = true;
  // A host name is sent as SNI and, when verifying, checked against the certificate's names;
  // an IP address is checked against its IP names (and not sent). Empty: neither.
  std::string server_name;
};

class TlsContext {
 public:
  // Load and check the configuration. Throws Error naming the file and OpenSSL's reason
  // ("tls key server.key: no such file", "tls: key does not match certificate").
  static std::shared_ptr<TlsContext> server(const TlsServerOptions& options);
  static std::shared_ptr<TlsContext> client(const TlsClientOptions& options);

  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

  // A stream for one new connection: its open() runs the handshake.
  std::unique_ptr<Stream> make_stream() const;
  // A StreamFactory that keeps this context alive.
  static StreamFactory factory(std::shared_ptr<const TlsContext> context);

 private:
  TlsContext(ssl_ctx_st* ctx, bool is_server, TlsClientOptions client);

  ssl_ctx_st* ctx_;
  bool is_server_;
  TlsClientOptions client_;
};

}  // namespace keel
