// HttpService: keel's HTTP/1.1 endpoint (--http EP) as a keel::Service: requests parsed with
// request_parser.h, answered through a Router (api.h, dashboard_routes.cc), keep-alive and
// pipelining, and Server-Sent Events streams (/api/events) that push a `stats` event every
// event_interval. Oversize or malformed requests get 400/411/413/431/505 and a close.
// It runs under a ReactorEngine with one loop (it reads its connections' queued output from
// that loop); its connections are not among the services `keel ctl` lists.
// Thread safety: every callback on the one HTTP loop.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <unordered_map>

#include "keel/service.h"
#include "services/http/api.h"
#include "services/http/attach_sessions.h"
#include "services/http/request_parser.h"
#include "services/http/router.h"

namespace keel::http {

struct HttpOptions {
  Limits limits;
  // Event streams open at once; one more is answered 503.
  size_t max_event_streams = 32;
  std::chrono::milliseconds event_interval{1000};
  // An event stream with this much output waiting (its client does not read) is closed.
  size_t max_stream_queued_bytes = 256 * 1024;
  // Pipelined requests are answered while less than this is queued for the client; the rest
  // wait (and reading pauses) until it reads.
  size_t max_pipeline_queued_bytes = 1 << 20;
};

class HttpService final : public Service {
 public:
  HttpService(HttpOptions options, Api& api);

  const char* name() const noexcept override { return "http"; }
  Router& router() noexcept { return router_; }

  void on_open(Server& server, const ConnectionInfo& info) override;
  void on_data(Server& server, ConnectionId id, Buffer& in) override;
  void on_peer_closed(Server& server, ConnectionId id) override;
  void on_close(Server& server, ConnectionId id, const CloseReason& reason) override;
  Drain drain() const noexcept override { return Drain::close; }

 private:
  struct Conn {
    std::string pending;  // bytes of requests not answered yet
    bool closing = false;
    bool stream = false;
    bool retry_armed = false;
  };
  // Answers the complete requests in pending while the client keeps up.
  void process(Server& server, ConnectionId id, Conn& st);
  void reply_and_close(Server& server, ConnectionId id, Conn& st, const Response& r,
                       const std::string& why);
  void open_stream(Server& server, ConnectionId id, Conn& st, const Request& request);
  void stream_tick(Server& server, ConnectionId id);

  HttpOptions options_;
  Api& api_;
  Router router_;
  std::unique_ptr<AttachSessions> attach_;  // the dashboard's attach (attach_sessions.h)
  std::unordered_map<uint64_t, Conn> conns_;
  // One stats event serves every stream of the same tick.
  std::string event_cache_;
  std::chrono::steady_clock::time_point event_cache_at_{};
};

}  // namespace keel::http
