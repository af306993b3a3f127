#include "keel/engine/reactor.h"

namespace keel {
namespace {
// The connection whose callback is running on this thread: a service replying to it (the
// common case) skips the by-id lookup.
thread_local TcpConnection* t_current = nullptr;

struct CurrentConnection {
  explicit CurrentConnection(TcpConnection& c) : saved(t_current) { t_current = &c; }
  ~CurrentConnection() { t_current = saved; }
  TcpConnection* saved;
};
}  // namespace

bool ReactorEngine::send(ConnectionId id, std::string_view bytes) {
  if (t_current && t_current->id() == id) return t_current->send(bytes);
  return server_.send(id, bytes);
}

ReactorEngine::ReactorEngine(LoopPool& pool, ServerOptions options, Service& service)
    : service_(service), server_(pool, std::move(options), callbacks_for_service()) {}

ConnectionCallbacks ReactorEngine::callbacks_for_service() {
  ConnectionCallbacks cb;
  cb.on_open = [this](TcpConnection& c) {
    service_.on_open(*this, ConnectionInfo{c.id(), c.peer()});
  };
  cb.on_data = [this](TcpConnection& c, Buffer& in) {
    CurrentConnection current(c);
    service_.on_data(*this, c.id(), in);
  };
  cb.on_peer_closed = [this](TcpConnection& c) { service_.on_peer_closed(*this, c.id()); };
  cb.on_close = [this](TcpConnection& c, const CloseReason& reason) {
    service_.on_close(*this, c.id(), reason);
  };
  if (service_.overflow() == Service::Overflow::pause_reading) {
    cb.on_high_water = [](TcpConnection& c, size_t) { c.pause_reading(); };
    cb.on_write_complete = [](TcpConnection& c) { c.resume_reading(); };
  } else {
    // The reason line goes at the end of the queue; the connection finishes gracefully if the
    // client reads it within the grace period, else it is closed then. Further sends to it are
    // dropped (shutdown was asked for), so its memory stops growing here.
    cb.on_high_water = [this](TcpConnection& c, size_t queued) {
      c.send(service_.overflow_line(queued));
      c.close_gracefully("slow consumer: " + std::to_string(queued) + " bytes queued");
      EventLoop& loop = c.loop();
      loop.run_after(kEvictGrace, [&loop, id = c.id()] {
        if (TcpConnection* late = loop.find(id)) late->force_close("slow consumer did not drain");
      });
    };
  }
  return cb;
}

}  // namespace keel
