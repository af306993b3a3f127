#include "keel/engine/reactor.h"

#include <atomic>
#include <mutex>

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

void finish_with_last_line(TcpConnection& c, std::string_view last_line, std::string_view reason,
                           std::chrono::milliseconds grace) {
  if (!last_line.empty()) c.send(last_line);
  c.close_gracefully(reason);
  EventLoop& loop = c.loop();
  loop.run_after(grace, [&loop, id = c.id(), why = std::string(reason)] {
    if (TcpConnection* late = loop.find(id)) late->force_close(why + " (did not close in time)");
  });
}

TcpConnection* ReactorEngine::current_if(ConnectionId id) noexcept {
  // Ids are per engine: the HTTP endpoint's connection may carry the same id as the hub client
  // its handler sends to, so the connection must also be on this engine's loop.
  if (!t_current || t_current->id() != id) return nullptr;
  return &t_current->loop() == server_.pool().loop_for(id) ? t_current : nullptr;
}

bool ReactorEngine::send(ConnectionId id, std::string_view bytes) {
  if (TcpConnection* c = current_if(id)) return c->send(bytes);
  return server_.send(id, bytes);
}

bool ReactorEngine::send_file(ConnectionId id, FileRegion region) {
  if (TcpConnection* c = current_if(id)) return c->send_file(std::move(region));
  return server_.send_file(id, std::move(region));
}

namespace {
ServerOptions with_refusal_line(ServerOptions options, const Service& service) {
  if (!options.refusal_line)
    options.refusal_line = [&service](Refusal reason) { return service.refusal_line(reason); };
  return options;
}
}  // namespace

ReactorEngine::ReactorEngine(LoopPool& pool, ServerOptions options, Service& service)
    : service_(service),
      server_(pool, with_refusal_line(std::move(options), service), callbacks_for_service()) {}

bool ReactorEngine::with_connection(ConnectionId id, std::function<void(TcpConnection&)> fn) {
  EventLoop* loop = server_.pool().loop_for(id);
  if (!loop || !loop->is_live(id)) return false;
  if (EventLoop::current() == loop) {
    TcpConnection* c = loop->find(id);
    if (!c) return false;
    fn(*c);
    return true;
  }
  loop->post([loop, id, fn = std::move(fn)] {
    if (TcpConnection* c = loop->find(id)) fn(*c);
  });
  return true;
}

// On the connection's own loop these act at once (as send does), so a service that closes a
// connection sees it closed: its timers, for one, no longer fire. Elsewhere they are posted.
bool ReactorEngine::shutdown(ConnectionId id) {
  return with_connection(id, [](TcpConnection& c) { c.shutdown(); });
}

bool ReactorEngine::close(ConnectionId id, std::string_view reason) {
  return with_connection(id, [why = std::string(reason)](TcpConnection& c) { c.force_close(why); });
}

bool ReactorEngine::close_gracefully(ConnectionId id, std::string_view last_line,
                                     std::string_view reason, std::chrono::milliseconds grace) {
  return with_connection(id, [line = std::string(last_line), why = std::string(reason), grace](
                                 TcpConnection& c) { finish_with_last_line(c, line, why, grace); });
}

bool ReactorEngine::pause_reading(ConnectionId id) {
  return with_connection(id, [](TcpConnection& c) { c.pause_reading(); });
}

bool ReactorEngine::resume_reading(ConnectionId id) {
  return with_connection(id, [](TcpConnection& c) { c.resume_reading(); });
}

TimerId ReactorEngine::start_timer(ConnectionId id, std::chrono::milliseconds delay, TimerTask fn) {
  EventLoop* loop = server_.pool().loop_for(id);
  if (!loop || !loop->in_loop_thread() || !loop->find(id)) return 0;
  // A timer outliving its connection finds the id stale and does nothing.
  return loop->run_after(delay, [loop, id, fn = std::move(fn)] {
    if (loop->find(id)) fn();
  });
}

void ReactorEngine::cancel_timer(ConnectionId id, TimerId timer) {
  EventLoop* loop = server_.pool().loop_for(id);
  if (loop && loop->in_loop_thread() && timer != 0) loop->cancel_timer(timer);
}

bool ReactorEngine::set_tap(ConnectionId id, std::unique_ptr<ConnectionTap> tap) {
  EventLoop* loop = server_.pool().loop_for(id);
  if (!tap || !loop || !loop->is_live(id)) return false;
  // Posted even on id's own loop: the tap is in place from the next turn, in order with sends
  // posted before. A connection gone by then still ends the tap.
  // (A task must be copyable: the tap rides in a shared holder, and keeps its address, which
  // clear_tap compares.)
  auto holder = std::make_shared<std::unique_ptr<ConnectionTap>>(std::move(tap));
  loop->post([loop, id, holder] {
    TcpConnection* c = loop->find(id);
    if (!c) return (*holder)->on_end("closed");
    c->set_tap(std::move(*holder));
  });
  return true;
}

bool ReactorEngine::clear_tap(ConnectionId id, const ConnectionTap* tap) {
  return with_connection(id, [tap](TcpConnection& c) { c.clear_tap(tap); });
}

EngineStats ReactorEngine::stats() const {
  ServerStats s = server_.stats();
  EngineStats out;
  out.accepted = s.accepted;
  out.rejected_over_cap = s.rejected_over_cap;
  out.rejected_per_ip = s.rejected_per_ip;
  out.accept_errors = s.accept_errors;
  out.fd_exhaustion = s.fd_exhaustion;
  out.open_failures = s.open_failures;
  out.active = s.active;
  out.closed = s.closed;
  out.slow_consumer_drops = slow_consumer_drops_.load(std::memory_order_relaxed);
  return out;
}

EngineTraffic ReactorEngine::traffic() {
  ServerTraffic t = server_.traffic();
  return {t.bytes_in, t.bytes_out, t.reads, t.sends, t.queued_bytes};
}

void ReactorEngine::visit(const std::function<void(const ClientSnapshot&)>& fn) {
  // Each loop copies its own connections; fn then runs here, on the caller's thread.
  std::mutex mutex;
  std::vector<ClientSnapshot> all;
  server_.pool().run_on_all_and_wait([&](EventLoop& loop) {
    std::vector<ClientSnapshot> here;
    loop.for_each_connection([&](TcpConnection& c) {
      if (c.state() == ConnectionState::closed || !server_.owns(c)) return;
      here.push_back({c.id(), c.peer(), c.state(), c.opened_at(), c.bytes_received(),
                      c.bytes_sent(), c.queued_output_bytes(), 0, c.buffer_memory_bytes(),
                      c.reading_paused(), c.transport()});
    });
    std::lock_guard lock(mutex);
    all.insert(all.end(), here.begin(), here.end());
  });
  for (const ClientSnapshot& s : all) fn(s);
}

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
      slow_consumer_drops_.fetch_add(1, std::memory_order_relaxed);
      finish_with_last_line(c, service_.overflow_line(queued),
                            "slow consumer: " + std::to_string(queued) + " bytes queued",
                            kEvictGrace);
    };
  }
  return cb;
}

}  // namespace keel
