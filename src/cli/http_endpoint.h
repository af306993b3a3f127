// The HTTP endpoint of keel serve/echo/chat/hub (--http EP): an HttpService on a reactor loop
// of its own, answering about the services the process runs. Loopback only unless a token file
// is given (--http-token-file, else --admin-token-file); with none, a random token is made at
// start and logged in the dashboard's URL (http://127.0.0.1:PORT/#token=...).
// Thread safety: every method from the thread that runs the services (serve.cc).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "keel/engine/engine.h"
#include "keel/net/loop_pool.h"

namespace keel::cli {

struct HttpFlags {
  std::string endpoint;    // empty: off
  std::string token_file;  // --http-token-file
};

class HttpEndpoint {
 public:
  // Checks the endpoint and reads the token (throws Error): a non-loopback endpoint without a
  // token file is refused here, before anything is bound.
  HttpEndpoint(const HttpFlags& flags, const std::string& admin_token_file);
  ~HttpEndpoint();

  // Binds and serves (throws Error). engines and their pool outlive the endpoint.
  void start(std::vector<Engine*> engines, LoopPool& service_pool);
  // /readyz answers 503 from now on.
  void draining();
  void stop();
  // The bound endpoint and the dashboard's URL (with the token in the fragment when it was
  // generated), for the log.
  std::string endpoint() const;
  std::string dashboard_url() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace keel::cli
