// Attach from the dashboard: an operator's session with one hub client over HTTP, built on the
// hub's own session mechanism (keel::Attachable, keel::OperatorStream) like `keel ctl attach`,
// with Server-Sent Events in place of the admin connection's event lines.
//   POST /api/attach {"to": ID|ADDR}      -> {"ok":true,"session":S,"attached":ID,...}
//   GET  /api/attach/events?session=S     -> SSE: data, eof, closed (as admin events), detached
//   POST /api/attach/say {"session":S,"text":T}
//   POST /api/attach/detach {"session":S}
// The session id (128 random bits) is handed only to a request that carried the token, so it is
// what authorizes the event stream (EventSource cannot send headers). A session whose stream
// has not connected within 10 s, or whose stream closes (the tab closed), is detached: the
// client is parked again and nothing it sent is lost.
// Thread safety: everything on the HTTP service's loop, except the OperatorStream methods the
// hub calls from its loops (post, end, open, holder), which hand their work to that loop.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <unordered_map>

#include "services/http/api.h"
#include "services/http/request_parser.h"
#include "services/http/response.h"
#include "services/http/router.h"

namespace keel {
class Server;
}

namespace keel::http {

class HttpAttachStream;

class AttachSessions {
 public:
  static constexpr size_t kMaxSessions = 16;

  explicit AttachSessions(Api& api) : api_(api) {}
  ~AttachSessions();  // every session still open is detached
  AttachSessions(const AttachSessions&) = delete;
  AttachSessions& operator=(const AttachSessions&) = delete;

  // Registers the POST routes and GET /api/attach/events (answered by open_events).
  void add_routes(Router& router);
  // GET /api/attach/events: writes head (the stream's response head) to connection id and makes
  // it the session's stream; or returns the refusal to send (and close).
  std::optional<Response> open_events(Server& server, ConnectionId id, const Request& request,
                                      const std::string& head);
  // An HTTP connection closed: if it was a session's stream, that session is detached.
  void connection_closed(ConnectionId id);

 private:
  Response start(const Request& request);
  Response say(const Request& request);
  Response detach(const Request& request);
  std::shared_ptr<HttpAttachStream> find(const Json& body, Response* error);
  void forget(const std::string& session);

  Api& api_;
  std::unordered_map<std::string, std::shared_ptr<HttpAttachStream>> sessions_;
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);  // sessions' callbacks outlive us?
};

}  // namespace keel::http
