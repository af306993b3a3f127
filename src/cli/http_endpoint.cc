#include "cli/http_endpoint.h"

#include <cerrno>
#include <fstream>

#include "admin/admin_protocol.h"
#include "keel/engine/reactor.h"
#include "keel/error.h"
#include "services/http/http_service.h"

namespace keel::cli {
namespace {

std::string read_token(const std::string& file, const char* flag) {
  std::ifstream in(file);
  std::string token;
  if (!in || !std::getline(in, token) || token.empty())
    throw Error(std::string(flag) + " " + file + ": missing, unreadable or empty");
  return token;
}

std::string random_token() {
  std::optional<std::string> token = http::random_hex128();
  if (!token) throw_system_error("getrandom", "HTTP token", errno);
  return *token;
}

// An HTTP endpoint's own limits: keep-alive clients that went quiet are closed after a minute.
ServerOptions http_server_options(const Endpoint& ep) {
  ServerOptions o;
  o.listen.push_back(ep);
  o.high_water_bytes = 4 << 20;  // pipelining and event streams bound themselves below this
  o.max_connections = 256;
  o.reserved_fds = 2;  // like the admin endpoint: answers when clients took every descriptor
  o.timeouts.idle = std::chrono::seconds(60);
  return o;
}

}  // namespace

struct HttpEndpoint::Impl {
  Endpoint requested;
  bool generated_token = false;
  http::Api api;
  std::unique_ptr<http::HttpService> service;
  std::unique_ptr<LoopPool> pool;
  std::unique_ptr<ReactorEngine> engine;
  bool started = false;
};

HttpEndpoint::HttpEndpoint(const HttpFlags& flags, const std::string& admin_token_file)
    : impl_(std::make_unique<Impl>()) {
  Impl& im = *impl_;
  im.requested = Endpoint::parse(flags.endpoint);
  if (im.requested.is_udp()) throw Error("--http " + flags.endpoint + ": HTTP needs a stream");
  const bool local = im.requested.is_unix() || admin::is_loopback(im.requested);
  if (!flags.token_file.empty())
    im.api.token = read_token(flags.token_file, "--http-token-file");
  else if (!admin_token_file.empty())
    im.api.token = read_token(admin_token_file, "--admin-token-file");
  if (im.api.token.empty()) {
    if (!local)
      throw Error("--http " + flags.endpoint +
                  ": not a loopback address; serving HTTP beyond this machine needs a token "
                  "(--http-token-file or --admin-token-file)");
    im.api.token = random_token();
    im.generated_token = true;
  }
  im.api.token_for_reads = !local;
}

HttpEndpoint::~HttpEndpoint() {
  stop();
}

void HttpEndpoint::start(std::vector<Engine*> engines, LoopPool& service_pool) {
  Impl& im = *impl_;
  im.api.scope.engines = std::move(engines);
  for (size_t i = 0; i < service_pool.size(); ++i) im.api.loops.push_back(&service_pool.loop(i));
  im.service = std::make_unique<http::HttpService>(http::HttpOptions{}, im.api);
  im.pool = std::make_unique<LoopPool>(1);
  im.engine =
      std::make_unique<ReactorEngine>(*im.pool, http_server_options(im.requested), *im.service);
  try {
    im.engine->start();
  } catch (const Error& e) {
    throw Error("--http: " + std::string(e.what()), e.errno_value());
  }
  im.pool->start();
  im.started = true;
  im.api.phase.store(http::Phase::ready);
}

void HttpEndpoint::draining() {
  impl_->api.phase.store(http::Phase::draining);
}

void HttpEndpoint::stop() {
  Impl& im = *impl_;
  if (!im.started) return;
  im.started = false;
  im.engine->stop();
  im.pool->stop();
}

std::string HttpEndpoint::endpoint() const {
  const Impl& im = *impl_;
  if (im.engine && !im.engine->endpoints().empty())
    return im.engine->endpoints().front().to_string();
  return im.requested.to_string();
}

std::string HttpEndpoint::dashboard_url() const {
  const Impl& im = *impl_;
  if (im.requested.is_unix()) return {};
  std::string url = "http://" + endpoint() + "/";
  if (im.generated_token) url += "#token=" + im.api.token;
  return url;
}

}  // namespace keel::cli
