#include "keel/net/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>

#include <climits>
#include <cstdint>
#include <utility>

#include "keel/error.h"

namespace keel {
namespace {

// OpenSSL's reason for the oldest queued error ("wrong version number"), and the queue cleared.
std::string take_openssl_error(const char* fallback) {
  unsigned long code = ERR_get_error();
  ERR_clear_error();
  if (code == 0) return fallback;
  const char* reason = ERR_reason_error_string(code);
  if (reason) return reason;
  char text[256];
  ERR_error_string_n(code, text, sizeof text);
  return text;
}

// A socket BIO of our own: OpenSSL's writes with write(2), and a write to a reset connection
// must not raise SIGPIPE (keel promises none ever reaches the process). The descriptor is the
// BIO's data pointer.
int bio_write(BIO* bio, const char* data, int len) {
  BIO_clear_retry_flags(bio);
  int fd = static_cast<int>(reinterpret_cast<intptr_t>(BIO_get_data(bio)));
  ssize_t n = ::send(fd, data, static_cast<size_t>(len), MSG_NOSIGNAL);
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) BIO_set_retry_write(bio);
  return static_cast<int>(n);
}

int bio_read(BIO* bio, char* data, int len) {
  BIO_clear_retry_flags(bio);
  int fd = static_cast<int>(reinterpret_cast<intptr_t>(BIO_get_data(bio)));
  ssize_t n = ::recv(fd, data, static_cast<size_t>(len), 0);
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) BIO_set_retry_read(bio);
  return static_cast<int>(n);
}

long bio_ctrl(BIO*, int cmd, long, void*) {
  return cmd == BIO_CTRL_FLUSH ? 1 : 0;  // writes are not buffered: nothing to flush
}

int bio_create(BIO* bio) {
  BIO_set_init(bio, 1);
  return 1;
}

const BIO_METHOD* socket_bio_method() {
  static BIO_METHOD* method = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "keel socket");
    BIO_meth_set_write(m, bio_write);
    BIO_meth_set_read(m, bio_read);
    BIO_meth_set_ctrl(m, bio_ctrl);
    BIO_meth_set_create(m, bio_create);
    return m;
  }();
  return method;
}

class TlsStream final : public Stream {
 public:
  TlsStream(SSL_CTX* ctx, bool is_server, TlsClientOptions client)
      // SSL_new takes a reference on the context: it outlives this stream.
      : ssl_(SSL_new(ctx)), is_server_(is_server), client_(std::move(client)) {}
  ~TlsStream() override {
    if (ssl_) SSL_free(ssl_);
  }

  Step open(int fd, const Endpoint&) override {
    if (!attached_ && !attach(fd)) return Step::failed;
    ERR_clear_error();
    int rc = SSL_do_handshake(ssl_);
    if (rc == 1) return Step::done;
    int err = SSL_get_error(ssl_, rc);
    if (err == SSL_ERROR_WANT_READ) return Step::want_read;
    if (err == SSL_ERROR_WANT_WRITE) return Step::want_write;
    error_ = "TLS handshake: " + failure_text(err);
    return Step::failed;
  }

  ssize_t read(int, char* data, size_t len) override {
    ERR_clear_error();
    int n = SSL_read(ssl_, data, static_cast<int>(len > INT_MAX ? INT_MAX : len));
    if (n > 0) return n;
    int saved = errno;
    int err = SSL_get_error(ssl_, n);
    if (err == SSL_ERROR_ZERO_RETURN) return 0;  // close_notify (or FIN, see the policy)
    return fail(err, saved);
  }

  ssize_t write(int, const char* data, size_t len) override {
    ERR_clear_error();
    int n = SSL_write(ssl_, data, static_cast<int>(len > INT_MAX ? INT_MAX : len));
    if (n > 0) return n;
    int saved = errno;
    return fail(SSL_get_error(ssl_, n), saved);
  }

  void shutdown_write(int fd) override {
    // Sends close_notify; reading goes on until the peer's (SSL_shutdown's 0 says so). If the
    // socket cannot take the alert now, the FIN alone ends our side.
    ERR_clear_error();
    SSL_shutdown(ssl_);
    ERR_clear_error();
    ::shutdown(fd, SHUT_WR);
  }

  bool has_pending_input() const override { return ssl_ && SSL_pending(ssl_) > 0; }
  std::string error_detail() const override { return error_; }
  std::string describe() const override {
    if (!ssl_) return {};
    return std::string(SSL_get_version(ssl_)) + " " + SSL_get_cipher_name(ssl_);
  }

 private:
  bool attach(int fd) {
    BIO* bio = ssl_ ? BIO_new(socket_bio_method()) : nullptr;
    if (!bio) {
      error_ = "TLS: " + take_openssl_error("out of memory");
      return false;
    }
    attached_ = true;
    BIO_set_data(bio, reinterpret_cast<void*>(static_cast<intptr_t>(fd)));
    SSL_set_bio(ssl_, bio, bio);
    if (is_server_) {
      SSL_set_accept_state(ssl_);
      return true;
    }
    SSL_set_connect_state(ssl_);
    const std::string& name = client_.server_name;
    if (name.empty()) return true;
    in6_addr ip;
    const bool is_ip = ::inet_pton(AF_INET, name.c_str(), &ip) == 1 ||
                       ::inet_pton(AF_INET6, name.c_str(), &ip) == 1;
    if (is_ip) {  // no SNI for an address (RFC 6066); check the certificate's IP names
      if (client_.verify) X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl_), name.c_str());
      return true;
    }
    SSL_set_tlsext_host_name(ssl_, name.c_str());
    if (client_.verify) SSL_set1_host(ssl_, name.c_str());
    return true;
  }

  // The reason an SSL call failed, for logs.
  std::string failure_text(int err) {
    if (err == SSL_ERROR_SYSCALL) {
      ERR_clear_error();
      return errno ? errno_text(errno) : std::string("connection closed by peer");
    }
    if (!is_server_ && SSL_get_verify_result(ssl_) != X509_V_OK) {
      std::string why = X509_verify_cert_error_string(SSL_get_verify_result(ssl_));
      ERR_clear_error();
      return "certificate verify failed: " + why;
    }
    return take_openssl_error("protocol error");
  }

  // A failed SSL_read/SSL_write as recv/send would report it.
  ssize_t fail(int err, int saved_errno) {
    if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
      errno = EAGAIN;
      return -1;
    }
    if (err == SSL_ERROR_SYSCALL && saved_errno != 0) {
      ERR_clear_error();
      errno = saved_errno;
      return -1;
    }
    error_ = "TLS: " + take_openssl_error("protocol error");
    errno = EPROTO;
    return -1;
  }

  SSL* ssl_;
  bool is_server_;
  bool attached_ = false;    // to its socket, at the first open()
  TlsClientOptions client_;  // client streams only
  std::string error_;
};

SSL_CTX* new_context(const SSL_METHOD* method) {
  SSL_CTX* ctx = SSL_CTX_new(method);
  if (!ctx) throw Error("tls: cannot create a context: " + take_openssl_error("out of memory"));
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                               SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_IGNORE_UNEXPECTED_EOF);
  // Partial writes match send(2); the retry after WANT_WRITE may come from a moved buffer (our
  // output buffer compacts); idle connections give their 16 KiB record buffers back.
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                            SSL_MODE_RELEASE_BUFFERS);
  // TLS 1.2: forward secrecy and AEAD only. TLS 1.3 suites are OpenSSL's defaults (all AEAD).
  if (SSL_CTX_set_cipher_list(ctx, "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL") != 1) {
    SSL_CTX_free(ctx);
    throw Error("tls: cipher list refused: " + take_openssl_error("unknown"));
  }
  return ctx;
}

}  // namespace

TlsContext::TlsContext(ssl_ctx_st* ctx, bool is_server, TlsClientOptions client)
    : ctx_(ctx), is_server_(is_server), client_(std::move(client)) {}

TlsContext::~TlsContext() {
  SSL_CTX_free(ctx_);
}

std::shared_ptr<TlsContext> TlsContext::server(const TlsServerOptions& options) {
  if (options.cert_file.empty() || options.key_file.empty())
    throw Error("tls: a server needs both a certificate and a key file");
  SSL_CTX* ctx = new_context(TLS_server_method());
  auto fail = [ctx](const std::string& what) {
    std::string why = take_openssl_error("unreadable");
    SSL_CTX_free(ctx);
    throw Error(what + ": " + why);
  };
  if (SSL_CTX_use_certificate_chain_file(ctx, options.cert_file.c_str()) != 1)
    fail("tls certificate " + options.cert_file);
  if (SSL_CTX_use_PrivateKey_file(ctx, options.key_file.c_str(), SSL_FILETYPE_PEM) != 1)
    fail("tls key " + options.key_file);
  if (SSL_CTX_check_private_key(ctx) != 1)
    fail("tls key " + options.key_file + " does not match certificate " + options.cert_file);
  return std::shared_ptr<TlsContext>(new TlsContext(ctx, true, {}));
}

std::shared_ptr<TlsContext> TlsContext::client(const TlsClientOptions& options) {
  SSL_CTX* ctx = new_context(TLS_client_method());
  if (options.verify) {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
    int ok = options.ca_file.empty()
                 ? SSL_CTX_set_default_verify_paths(ctx)
                 : SSL_CTX_load_verify_locations(ctx, options.ca_file.c_str(), nullptr);
    if (ok != 1) {
      std::string why = take_openssl_error("unreadable");
      SSL_CTX_free(ctx);
      throw Error("tls ca " + (options.ca_file.empty() ? "(system)" : options.ca_file) + ": " +
                  why);
    }
  } else {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
  }
  return std::shared_ptr<TlsContext>(new TlsContext(ctx, false, options));
}

std::unique_ptr<Stream> TlsContext::make_stream() const {
  return std::make_unique<TlsStream>(ctx_, is_server_, is_server_ ? TlsClientOptions{} : client_);
}

StreamFactory TlsContext::factory(std::shared_ptr<const TlsContext> context) {
  return [context = std::move(context)] { return context->make_stream(); };
}

}  // namespace keel
