#include "services/http/http_service.h"

#include "keel/net/event_loop.h"
#include "keel/net/tcp_connection.h"

namespace keel::http {
namespace {

// How long a client being closed after an error reply gets to read it.
constexpr std::chrono::milliseconds kLinger{2000};
// How soon a connection whose answers wait for its client to read is looked at again.
constexpr std::chrono::milliseconds kPipelineRetry{20};

// Output queued for id on the HTTP loop (the service runs under a one-loop ReactorEngine).
size_t queued_output(ConnectionId id) {
  EventLoop* loop = EventLoop::current();
  TcpConnection* c = loop ? loop->find(id) : nullptr;
  return c ? c->queued_output_bytes() : 0;
}

}  // namespace

HttpService::HttpService(HttpOptions options, Api& api)
    : options_(options), api_(api), attach_(std::make_unique<AttachSessions>(api)) {
  add_dashboard_routes(router_);
  add_api_routes(router_, api_);
  attach_->add_routes(router_);
  // /api/events is answered by the service itself (a stream, not one reply): the route is here
  // so that 404/405 come out right.
  router_.add("GET", "/api/events", [](const Request&) {
    Response r;
    r.event_stream = true;
    return r;
  });
}

void HttpService::on_open(Server&, const ConnectionInfo& info) {
  conns_.try_emplace(info.id.value());
}

void HttpService::on_data(Server& server, ConnectionId id, Buffer& in) {
  auto it = conns_.find(id.value());
  if (it == conns_.end() || it->second.closing || it->second.stream) {
    in.consume_all();  // a stream's client has nothing more to say
    return;
  }
  it->second.pending.append(in.view());
  in.consume_all();
  process(server, id, it->second);
}

void HttpService::process(Server& server, ConnectionId id, Conn& st) {
  Request request;
  while (!st.closing && !st.stream && !st.pending.empty()) {
    if (queued_output(id) >= options_.max_pipeline_queued_bytes) {
      // The client is not reading its answers: stop reading its requests until it does.
      server.pause_reading(id);
      if (!st.retry_armed) {
        st.retry_armed = true;
        server.start_timer(id, kPipelineRetry, [this, &server, id] {
          auto it = conns_.find(id.value());
          if (it == conns_.end()) return;
          it->second.retry_armed = false;
          process(server, id, it->second);
        });
      }
      return;
    }
    ParseResult parsed = parse_request(st.pending, options_.limits, request);
    if (parsed.status == ParseResult::Status::need_more) break;
    if (parsed.status == ParseResult::Status::error) {
      Response r = text_response(parsed.http_status, parsed.error);
      reply_and_close(server, id, st, r, "http: " + parsed.error);
      return;
    }
    st.pending.erase(0, parsed.consumed);
    Response response = router_.dispatch(request);
    if (response.event_stream) {
      open_stream(server, id, st, request);
      return;
    }
    if (!request.keep_alive || response.close) {
      response.close = true;
      reply_and_close(server, id, st, response, "http: connection close");
      return;
    }
    server.send(id, serialize(response, request.method == "HEAD"));
  }
  if (st.pending.empty()) st.pending.shrink_to_fit();  // an idle keep-alive holds nothing
  server.resume_reading(id);
}

void HttpService::reply_and_close(Server& server, ConnectionId id, Conn& st, const Response& r,
                                  const std::string& why) {
  Response last = r;
  last.close = true;
  st.closing = true;
  st.pending.clear();
  server.close_gracefully(id, serialize(last, false), why, kLinger);
}

void HttpService::open_stream(Server& server, ConnectionId id, Conn& st, const Request& request) {
  Response denied;
  // An attach stream is authorized by its session id (given only to a request with the token).
  if (request.path != "/api/attach/events" && !may_read(api_, request, &denied))
    return reply_and_close(server, id, st, denied,
                           "http: "
                           "event stream denied");
  if (api_.streams.load(std::memory_order_relaxed) >= options_.max_event_streams) {
    Response busy = text_response(
        503, "too many event streams open (" + std::to_string(options_.max_event_streams) + ")");
    busy.headers.emplace_back("Retry-After", "5");
    return reply_and_close(server, id, st, busy, "http: too many event streams");
  }
  Response head;
  head.content_type = "text/event-stream; charset=utf-8";
  head.event_stream = true;
  std::string bytes = serialize(head, true);
  // The browser reconnects after this many milliseconds if the stream breaks.
  bytes += "retry: 2000\n\n";
  if (request.path == "/api/attach/events") {  // one attach session's events, not stats
    if (std::optional<Response> refused = attach_->open_events(server, id, request, bytes))
      return reply_and_close(server, id, st, *refused, "http: attach stream refused");
  } else {
    server.send(id, bytes);
  }
  st.stream = true;
  st.pending.clear();
  st.pending.shrink_to_fit();
  api_.streams.fetch_add(1, std::memory_order_relaxed);
  if (request.path != "/api/attach/events") stream_tick(server, id);
}

void HttpService::stream_tick(Server& server, ConnectionId id) {
  auto it = conns_.find(id.value());
  if (it == conns_.end() || !it->second.stream) return;
  size_t queued = queued_output(id);
  if (queued > options_.max_stream_queued_bytes) {
    api_.dropped_streams.fetch_add(1, std::memory_order_relaxed);
    server.close(id, "http: event stream not read (" + std::to_string(queued) + " bytes waiting)");
    return;
  }
  auto now = std::chrono::steady_clock::now();
  if (event_cache_.empty() || now - event_cache_at_ >= options_.event_interval / 2) {
    event_cache_ = "event: stats\ndata: " + stats_event_json(api_) + "\n\n";
    event_cache_at_ = now;
  }
  server.send(id, event_cache_);
  server.start_timer(id, options_.event_interval, [this, &server, id] { stream_tick(server, id); });
}

void HttpService::on_peer_closed(Server& server, ConnectionId id) {
  auto it = conns_.find(id.value());
  if (it != conns_.end() && !it->second.closing && !it->second.stream) {
    // A request cut short by the client's FIN is not answered; complete ones were.
    it->second.closing = true;
  }
  server.shutdown(id);
}

void HttpService::on_close(Server&, ConnectionId id, const CloseReason&) {
  auto it = conns_.find(id.value());
  if (it == conns_.end()) return;
  if (it->second.stream) {
    api_.streams.fetch_sub(1, std::memory_order_relaxed);
    attach_->connection_closed(id);
  }
  conns_.erase(it);
}

}  // namespace keel::http
