// FilesClient: one connection to a keel files server, as keel ls, get and put use it: framed
// requests and replies (docs/protocols.md, "keel files") and the raw bytes of a transfer, all
// blocking with a timeout on every wait. Failures throw TransferFailed with the exit code the
// command ends with.
// Thread safety: one thread per FilesClient.
#pragma once

#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>

#include "cli/client_tls.h"
#include "keel/net/endpoint.h"
#include "keel/net/socket.h"
#include "keel/net/stream.h"
#include "services/files/protocol.h"

namespace keel::cli {

// What ends a files command early: its exit code (commands.h) and a line for stderr.
class TransferFailed : public std::runtime_error {
 public:
  TransferFailed(int exit_code, const std::string& message)
      : std::runtime_error(message), exit_code_(exit_code) {}
  int exit_code() const noexcept { return exit_code_; }

 private:
  int exit_code_;
};

struct FilesClientOptions {
  std::string target;  // HOST:PORT, [V6]:PORT or unix:PATH
  int connect_timeout_ms = 5000;
  // A wait for the server (a reply, room to write, the next bytes) longer than this fails.
  double io_timeout_s = 60;
  ClientTlsFlags tls;
};

class FilesClient {
 public:
  // Connects (and runs the TLS handshake). Throws TransferFailed.
  explicit FilesClient(const FilesClientOptions& options);

  void request(const files::Request& r);
  // The next reply frame. An ERROR reply is returned like any other (the caller knows what it
  // means); a malformed frame or the end of the connection throws.
  files::Reply reply();
  // Sends all of data.
  void write_raw(const char* data, size_t n);
  // Reads 1..n bytes. Throws when the connection ends or fails first.
  size_t read_raw(char* data, size_t n);
  // Ends our side of the connection and waits, at most the I/O timeout, for the server to end
  // its own. A server lets go of an upload cut short before it does, so once this returns the
  // upload's name is free for another connection. Never throws.
  void finish() noexcept;
  const Endpoint& endpoint() const noexcept { return endpoint_; }

 private:
  void wait_for(short events);
  [[noreturn]] void broken(int err, const std::string& doing);

  Endpoint endpoint_;
  Socket socket_;
  std::unique_ptr<Stream> tls_;
  int io_timeout_ms_;
  std::string input_;  // read ahead of what reply() returned
  size_t input_at_ = 0;
};

// A server's ERROR reply as a failure: exit 1 ("keel get: not_found: no such file: a/b").
[[noreturn]] void fail_with(const files::Reply& error, const std::string& what);

}  // namespace keel::cli
