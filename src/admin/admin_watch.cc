// The admin request watch (docs/protocols.md, "Admin protocol", "watch"): the admin connection
// becomes a read-only stream of one client's traffic, both directions, until the client closes
// (a "closed" event) or the operator sends detach or goes away. Built on attach's session
// streams (EventStream); one engine tap (keel/net/connection_tap.h) per watched client feeds
// every operator watching it.
//
// Bounds: each watcher has at most kWindowBytes posted and not yet written to its socket; past
// that the tap drops bytes for that watcher and counts them, and a "skipped" event with the
// count goes out with the next chunk there is room for (or before "closed"). A chunk larger
// than kMaxChunkBytes is cut there, the rest counted as skipped. The watched client is never
// slowed: the tap only copies and posts.
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <mutex>

#include "admin/admin_context.h"
#include "admin/admin_fields.h"
#include "admin/event_stream.h"

namespace keel::admin {
namespace {

constexpr size_t kWindowBytes = 256 * 1024;
constexpr size_t kMaxChunkBytes = 64 * 1024;

// "2026-11-28T20:31:02.123Z"
std::string timestamp_ms() {
  auto now = std::chrono::system_clock::now();
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
  std::string s = utc_timestamp(now);
  char frac[8];
  std::snprintf(frac, sizeof frac, ".%03d", static_cast<int>(ms % 1000));
  s.insert(s.size() - 1, frac);
  return s;
}

// One operator watching: its stream and the bytes it has posted and not yet written.
struct Watcher {
  std::shared_ptr<OperatorStream> stream;
  std::shared_ptr<std::atomic<size_t>> in_flight = std::make_shared<std::atomic<size_t>>(0);
  uint64_t skipped = 0;
  bool started = false;
};

}  // namespace

// Everyone watching one client. The tap on the client's connection calls it from the engine's
// threads; the admin loop adds and removes watchers. The mutex orders the two directions (the
// threads engine taps them on two threads); only watched connections ever take it.
class WatchFeed {
 public:
  // False once the client has closed (the feed is done).
  bool add(Watcher w) {
    std::lock_guard lock(mutex_);
    if (ended_) return false;
    if (installed_) start(w);
    watchers_.push_back(std::move(w));
    return true;
  }
  // Returns how many watchers are left.
  size_t remove(const OperatorStream* stream) {
    std::lock_guard lock(mutex_);
    std::erase_if(watchers_, [&](const Watcher& w) { return w.stream.get() == stream; });
    return watchers_.size();
  }

  void installed() noexcept {
    std::lock_guard lock(mutex_);
    installed_ = true;
    for (Watcher& w : watchers_) start(w);
  }

  void bytes(ConnectionTap::Direction dir, std::string_view data) noexcept {
    const size_t keep = std::min(data.size(), kMaxChunkBytes);
    std::lock_guard lock(mutex_);
    if (watchers_.empty()) return;
    const std::string at = timestamp_ms();
    for (Watcher& w : watchers_) {
      if (w.in_flight->load(std::memory_order_acquire) + keep > kWindowBytes) {
        w.skipped += data.size();
        continue;
      }
      flush_skipped(w, at);
      w.in_flight->fetch_add(keep, std::memory_order_acq_rel);
      OperatorEvent ev{"data",
                       std::string(data.substr(0, keep)),
                       {{"dir", dir == ConnectionTap::Direction::in ? "in" : "out"}, {"at", at}},
                       keep};
      if (!w.stream->post(std::move(ev))) w.in_flight->fetch_sub(keep);
      w.skipped += data.size() - keep;
    }
  }

  void end(std::string_view why) noexcept {
    std::lock_guard lock(mutex_);
    ended_ = true;
    const std::string at = timestamp_ms();
    for (Watcher& w : watchers_) {
      flush_skipped(w, at);
      w.stream->end(OperatorEvent{"closed", {}, {{"reason", std::string(why)}, {"at", at}}, 0});
    }
    watchers_.clear();
  }

 private:
  static void start(Watcher& w) {
    if (w.started) return;
    w.started = true;
    w.stream->post(OperatorEvent{"started", {}, {{"at", timestamp_ms()}}, 0});
  }
  static void flush_skipped(Watcher& w, const std::string& at) {
    if (w.skipped == 0) return;
    w.stream->post(
        OperatorEvent{"skipped", {}, {{"bytes", std::to_string(w.skipped)}, {"at", at}}, 0});
    w.skipped = 0;
  }

  std::mutex mutex_;
  std::vector<Watcher> watchers_;
  bool installed_ = false;
  bool ended_ = false;
};

namespace {

class WatchTap final : public ConnectionTap {
 public:
  explicit WatchTap(std::shared_ptr<WatchFeed> feed) : feed_(std::move(feed)) {}
  void on_installed() noexcept override { feed_->installed(); }
  void on_bytes(Direction dir, std::string_view bytes) noexcept override {
    feed_->bytes(dir, bytes);
  }
  void on_end(std::string_view why) noexcept override { feed_->end(why); }

 private:
  std::shared_ptr<WatchFeed> feed_;
};

}  // namespace

std::string cmd_watch(Context& ctx, TcpConnection& c, AdminConn& st, const Json& req) {
  if (st.session)
    return error_line("this connection is in a " + st.session->kind + " session with client " +
                      std::to_string(st.session->client.value()) + ": detach first");
  auto to = req.find("to");
  if (to == req.end()) return error_line("missing \"to\" (a client id or an address)");
  std::string error;
  std::optional<ClientRef> who = client_ref_field(*to, &error);
  if (!who) return error_line(error);
  // "n2/17": this node's own client is as its id; another node's is watched there.
  if (auto remote = to->is_string() ? parse_node_client_id(to->get_ref<const std::string&>())
                                    : std::nullopt) {
    if (!ctx.cluster || remote->first != ctx.cluster->node)
      return error_line("watch reaches this node's clients only: run keel ctl watch against node " +
                        remote->first + "'s admin endpoint");
    who = ClientRef(remote->second);
  }
  std::optional<FoundClient> found = find_client(ctx, *who, error);
  if (!found) return error_line(error);
  Engine& engine = *ctx.engines[found->engine];
  const ConnectionId id = found->snapshot.id;
  if (!engine.can_tap())
    return error_line("watch is not available under --model " + std::string(engine.model()) +
                      ": its connections live in other processes (use --model reactor or "
                      "threads)");

  auto stream = std::make_shared<EventStream>(c, describe_operator(c, ""));
  Watcher watcher{stream};
  stream->on_written([in_flight = watcher.in_flight](size_t credit) {
    in_flight->fetch_sub(credit, std::memory_order_acq_rel);
  });
  // The operator left (detach, or its connection closed): it is fed no more; the last one out
  // takes the tap off the client.
  stream->on_operator_left([ctx = &ctx, engine = &engine, id, raw = stream.get()] {
    auto it = ctx->watches.find(id.value());
    if (it == ctx->watches.end() || it->second.feed->remove(raw) > 0) return;
    engine->clear_tap(id, it->second.tap);
    ctx->watches.erase(it);
  });
  // The client closed and "closed" was written: back to plain requests.
  stream->on_ended([ctx = &ctx, admin_id = c.id().value(), id, raw = stream.get()] {
    auto conn = ctx->conns.find(admin_id);
    if (conn != ctx->conns.end() && conn->second.session &&
        conn->second.session->stream.get() == raw)
      conn->second.session.reset();
    auto it = ctx->watches.find(id.value());
    if (it != ctx->watches.end() && it->second.feed->remove(raw) == 0) ctx->watches.erase(it);
  });

  auto it = ctx.watches.find(id.value());
  if (it == ctx.watches.end() || !it->second.feed->add(watcher)) {
    if (it != ctx.watches.end()) ctx.watches.erase(it);  // a closed client's feed, not yet gone
    auto feed = std::make_shared<WatchFeed>();
    feed->add(watcher);
    auto tap = std::make_unique<WatchTap>(feed);
    const ConnectionTap* raw_tap = tap.get();
    if (!engine.set_tap(id, std::move(tap)))
      return error_line("no such client " + std::to_string(id.value()));
    ctx.watches[id.value()] = Context::Watch{std::move(feed), raw_tap};
  }
  st.session = StreamSession{stream, "watch", found->engine, id, {}};
  return to_line(Json{{"ok", true},
                      {"watching", id.value()},
                      {"service", engine.service().name()},
                      {"peer", found->snapshot.peer.to_string()}});
}

}  // namespace keel::admin
