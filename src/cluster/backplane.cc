#include "cluster/backplane.h"

#include <hiredis/hiredis.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>

#include "cluster/redis_link.h"

namespace keel::cluster {
namespace {

// A name is this node's if nobody holds it or this node does; the lease is (re)set.
constexpr std::string_view kClaimScript =
    "local o = redis.call('GET', KEYS[1]) "
    "if o and o ~= ARGV[1] then return o end "
    "redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) "
    "return ARGV[1]";
// Renews this node's names (claiming again those Redis forgot); returns those another holds.
constexpr std::string_view kRenewScript =
    "local lost = {} "
    "for _, k in ipairs(KEYS) do "
    "  local o = redis.call('GET', k) "
    "  if o == false or o == ARGV[1] then redis.call('SET', k, ARGV[1], 'PX', ARGV[2]) "
    "  else lost[#lost + 1] = k end "
    "end "
    "return lost";
constexpr std::string_view kReleaseScript =
    "for _, k in ipairs(KEYS) do "
    "  if redis.call('GET', k) == ARGV[1] then redis.call('DEL', k) end "
    "end "
    "return 0";
constexpr size_t kNamesPerScript = 500;

bool is_error(const redisReply* r) {
  return r == nullptr || r->type == REDIS_REPLY_ERROR;
}

std::string_view text_of(const redisReply* r) {
  return r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS)
             ? std::string_view(r->str, r->len)
             : std::string_view();
}

uint64_t start_seq() {
  // A node restarted under the same name continues above its last number (microseconds since
  // the epoch grow faster than any node publishes), so receivers do not take it for repeats.
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

}  // namespace

Backplane::Backplane(BackplaneOptions options, EventFn on_event, StateFn on_state,
                     NamesLostFn names_lost)
    : options_(std::move(options)),
      on_event_(std::move(on_event)),
      on_state_(std::move(on_state)),
      on_names_lost_(std::move(names_lost)),
      next_seq_(start_seq()) {
  auto link_options = [&](const char* role) {
    RedisLink::Options o;
    o.address = options_.redis;
    o.name = options_.node + "/" + role;
    o.reply_timeout = options_.reply_timeout;
    o.backoff_max = options_.backoff_max;
    o.connect_timeout = std::min(options_.reply_timeout, std::chrono::milliseconds(2000));
    o.ping_interval = std::min(options_.reply_timeout / 3, std::chrono::milliseconds(1000));
    return o;
  };
  writer_ = std::make_unique<RedisLink>(loop_, link_options("writer"),
                                        [this](bool, const std::string&) { on_link_state(); });
  reader_ = std::make_unique<RedisLink>(loop_, link_options("reader"),
                                        [this](bool, const std::string&) { on_link_state(); });
}

Backplane::~Backplane() {
  stop(std::chrono::milliseconds(0));
}

void Backplane::start() {
  if (thread_.joinable()) return;
  writer_->start();
  reader_->start();
  heartbeat_timer_ = loop_.run_every(options_.heartbeat, [this] { heartbeat(); });
  renew_timer_ = loop_.run_every(options_.name_lease / 3, [this] { renew_names(); });
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "keel-cluster");
    loop_.run();
  });
}

void Backplane::stop(std::chrono::milliseconds timeout) {
  if (!thread_.joinable()) return;
  loop_.post([this, timeout] {
    stopping_ = true;
    if (writer_->up()) {
      NodeEvent gone{EventKind::gone, next_seq_++, options_.node, {}};
      std::string bytes = encode(gone);
      waiting_bytes_ += bytes.size();
      waiting_.push_back({std::move(bytes)});
      flush();
      if (!names_.empty()) {
        std::vector<std::string> keys(names_.begin(), names_.end());
        std::vector<std::string_view> argv = {"EVAL", kReleaseScript};
        std::string count = std::to_string(keys.size());
        argv.push_back(count);
        for (auto& k : keys) argv.push_back(k);
        argv.push_back(options_.node);
        writer_->command(argv, nullptr);
        names_.clear();
      }
    }
    stop_when_written(EventLoop::Clock::now() + timeout);
  });
  thread_.join();
  thread_ = {};
  // The loop is not running: this thread may tear the links down.
  writer_->stop();
  reader_->stop();
  up_ = false;
}

void Backplane::stop_when_written(EventLoop::Clock::time_point deadline) {
  bool written = !writer_->up() ||
                 (waiting_.empty() && unacked_.empty() && writer_->stats().pending_commands == 0);
  if (written || EventLoop::Clock::now() >= deadline) return loop_.quit();
  loop_.run_after(std::chrono::milliseconds(5), [this, deadline] { stop_when_written(deadline); });
}

void Backplane::on_link_state() {
  if (stopping_) {  // the links are being stopped: nothing to tell
    up_ = false;
    return;
  }
  // Up once this node also knows where it reads from: an event published by another node after
  // it reported up must reach it (before, one written between the links' connect and the
  // XREVRANGE reply was behind the read position and never read).
  const bool now_up = writer_->up() && reader_->up() && !last_id_.empty();
  if (!writer_->up() && !unacked_.empty()) {
    // The writes whose replies were lost with the link go again, first, in order, once it is
    // back (a write that did land is then read twice, and its repeat dropped).
    for (auto it = unacked_.rbegin(); it != unacked_.rend(); ++it) {
      waiting_bytes_ += it->bytes.size();
      waiting_.push_front(std::move(*it));
    }
    unacked_.clear();
  }
  if (now_up == up_.load()) {
    if (writer_->up()) flush();
    if (reader_->up()) read_next();
    return;
  }
  up_ = now_up;
  {
    std::lock_guard lock(stats_mutex_);
    if (now_up && was_up_) ++stats_.reconnects;
    stats_.last_error =
        now_up ? "" : (!writer_->up() ? writer_->last_error() : reader_->last_error());
  }
  if (now_up) {
    if (was_up_)
      spdlog::info("cluster: link to {} is back", options_.redis.to_string());
    else
      spdlog::info("cluster: node {} joined through {}", options_.node, options_.redis.to_string());
    was_up_ = true;
    publish(EventKind::hello, {});
    renew_names();  // Redis may have restarted and forgotten them
  } else {
    spdlog::warn("cluster: link to {} is down ({}); serving local clients, {} bytes of events wait",
                 options_.redis.to_string(), stats().last_error, waiting_bytes_);
  }
  if (writer_->up()) flush();
  if (reader_->up()) read_next();
  if (on_state_) on_state_(now_up);
}

void Backplane::publish(EventKind kind, std::vector<std::string> args) {
  loop_.post([this, kind, args = std::move(args)]() mutable {
    if (stopping_) return;
    // A number is spent only on an event that is kept: one dropped here is counted here, and
    // the readers see no gap for it (else it would be counted twice, here and there).
    NodeEvent e{kind, next_seq_, options_.node, std::move(args)};
    std::string bytes = encode(e);
    if (waiting_bytes_ + bytes.size() > options_.outage_buffer_bytes) {
      std::lock_guard lock(stats_mutex_);
      ++stats_.dropped_events;
      return;
    }
    ++next_seq_;
    waiting_bytes_ += bytes.size();
    waiting_.push_back({std::move(bytes)});
    flush();
  });
}

void Backplane::flush() {
  static const std::string stream_field = "e";
  const std::string stream = options_.prefix + "events";
  const std::string max_len = std::to_string(options_.stream_max_len);
  while (!waiting_.empty() && writer_->up()) {
    Outgoing& next = waiting_.front();
    bool queued =
        writer_->command({"XADD", stream, "MAXLEN", "~", max_len, "*", stream_field, next.bytes},
                         [this](const redisReply* r) {
                           if (r == nullptr)
                             return;  // the link dropped: on_link_state writes it again
                           if (!unacked_.empty()) unacked_.pop_front();
                           {
                             std::lock_guard lock(stats_mutex_);
                             if (r->type == REDIS_REPLY_ERROR) {
                               ++stats_.dropped_events;
                               stats_.last_error = "XADD: " + describe_reply(r);
                             } else {
                               ++stats_.published;
                             }
                           }
                           if (r->type == REDIS_REPLY_ERROR)
                             spdlog::warn("cluster: Redis refused an event: {}", describe_reply(r));
                           flush();
                         });
    if (!queued) break;  // down, or enough in flight: the next reply flushes again
    waiting_bytes_ -= next.bytes.size();
    unacked_.push_back(std::move(next));
    waiting_.pop_front();
  }
}

void Backplane::read_next() {
  if (reading_ || !reader_->up() || stopping_) return;
  const std::string stream = options_.prefix + "events";
  if (last_id_.empty()) {
    // Where the stream ends now: this node reads what is written from here on.
    reading_ = reader_->command(
        {"XREVRANGE", stream, "+", "-", "COUNT", "1"}, [this](const redisReply* r) {
          reading_ = false;
          if (is_error(r)) return;
          last_id_ = "0-0";
          if (r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
              r->element[0]->type == REDIS_REPLY_ARRAY && r->element[0]->elements > 0)
            last_id_ = std::string(text_of(r->element[0]->element[0]));
          on_link_state();  // now up (and reading) if the links still are
        });
    return;
  }
  const std::string block =
      std::to_string(std::max<int64_t>(1, options_.reply_timeout.count() / 3));
  reading_ =
      reader_->command({"XREAD", "COUNT", "512", "BLOCK", block, "STREAMS", stream, last_id_},
                       [this](const redisReply* r) {
                         reading_ = false;
                         if (r == nullptr)
                           return;  // the link dropped; read_next() again when it is back
                         on_entries(r);
                         read_next();
                       });
}

void Backplane::on_entries(const redisReply* r) {
  if (r->type == REDIS_REPLY_ERROR) {
    spdlog::warn("cluster: XREAD: {}", describe_reply(r));
    return;
  }
  if (r->type != REDIS_REPLY_ARRAY) return;  // nil: nothing new within the block time
  for (size_t s = 0; s < r->elements; ++s) {
    const redisReply* stream = r->element[s];
    if (stream->type != REDIS_REPLY_ARRAY || stream->elements < 2) continue;
    const redisReply* entries = stream->element[1];
    if (entries->type != REDIS_REPLY_ARRAY) continue;
    for (size_t i = 0; i < entries->elements; ++i) {
      const redisReply* entry = entries->element[i];
      if (entry->type != REDIS_REPLY_ARRAY || entry->elements < 2) continue;
      std::string_view id = text_of(entry->element[0]);
      const redisReply* fields = entry->element[1];
      std::string_view bytes;
      if (fields->type == REDIS_REPLY_ARRAY)
        for (size_t f = 0; f + 1 < fields->elements; f += 2)
          if (text_of(fields->element[f]) == "e") bytes = text_of(fields->element[f + 1]);
      if (!id.empty()) last_id_ = std::string(id);
      deliver(id, bytes);
    }
  }
}

void Backplane::deliver(std::string_view id, std::string_view bytes) {
  std::string why;
  std::optional<NodeEvent> e = decode_event(bytes, &why);
  if (!e) {
    std::lock_guard lock(stats_mutex_);
    if (++stats_.bad_events == 1)
      spdlog::warn("cluster: stream entry {} is not a keel event ({}); skipped", id, why);
    return;
  }
  if (e->node == options_.node) return;  // our own, already delivered locally
  uint64_t& last = last_seq_[e->node];
  {
    std::lock_guard lock(stats_mutex_);
    if (e->seq <= last) {
      ++stats_.repeats;
      return;
    }
    // A node's numbers go up by one; a jump is events trimmed from the stream before we read
    // them. (The first event of a node we had not heard from sets the base.)
    if (last != 0 && e->seq > last + 1) stats_.lost_events += e->seq - last - 1;
    ++stats_.delivered;
  }
  last = e->seq;
  heard_[e->node] = EventLoop::Clock::now();
  if (e->kind == EventKind::gone) {
    last_seq_.erase(e->node);
    heard_.erase(e->node);
  }
  if (e->kind == EventKind::op_request || e->kind == EventKind::op_reply ||
      e->kind == EventKind::op_session) {
    if (on_operator_) on_operator_(*e);
    return;
  }
  if (on_event_) on_event_(*e);
}

void Backplane::claim(const std::string& name, ClaimFn done) {
  loop_.post([this, name, done = std::move(done)] {
    const std::string key = options_.prefix + "name:" + name;
    const std::string lease = std::to_string(options_.name_lease.count());
    bool queued =
        writer_->up() &&
        writer_->command({"EVAL", kClaimScript, "1", key, options_.node, lease},
                         [this, name, done](const redisReply* r) {
                           if (is_error(r)) {
                             if (r) spdlog::warn("cluster: claim {}: {}", name, describe_reply(r));
                             return done(ClaimResult::unavailable, "");
                           }
                           std::string holder(text_of(r));
                           if (holder == options_.node) {
                             names_.insert(options_.prefix + "name:" + name);
                             return done(ClaimResult::claimed, holder);
                           }
                           done(ClaimResult::taken, holder);
                         });
    if (!queued) done(ClaimResult::unavailable, "");
  });
}

void Backplane::release(const std::string& name) {
  loop_.post([this, name] {
    const std::string key = options_.prefix + "name:" + name;
    if (names_.erase(key) == 0 || !writer_->up()) return;
    writer_->command({"EVAL", kReleaseScript, "1", key, options_.node}, nullptr);
  });
}

void Backplane::renew_names() {
  if (names_.empty() || !writer_->up()) return;
  const std::string lease = std::to_string(options_.name_lease.count());
  const std::string name_prefix = options_.prefix + "name:";
  std::vector<std::string> keys(names_.begin(), names_.end());
  for (size_t at = 0; at < keys.size(); at += kNamesPerScript) {
    size_t n = std::min(kNamesPerScript, keys.size() - at);
    std::string count = std::to_string(n);
    std::vector<std::string_view> argv = {"EVAL", kRenewScript, count};
    for (size_t i = at; i < at + n; ++i) argv.push_back(keys[i]);
    argv.push_back(options_.node);
    argv.push_back(lease);
    writer_->command(argv, [this, name_prefix](const redisReply* r) {
      if (is_error(r) || r->type != REDIS_REPLY_ARRAY || r->elements == 0) return;
      std::vector<std::string> lost;
      for (size_t i = 0; i < r->elements; ++i) {
        std::string key(text_of(r->element[i]));
        if (names_.erase(key) && key.starts_with(name_prefix))
          lost.push_back(key.substr(name_prefix.size()));
      }
      if (!lost.empty()) {
        spdlog::warn("cluster: {} name(s) were taken by other nodes while Redis forgot them",
                     lost.size());
        if (on_names_lost_) on_names_lost_(lost);
      }
    });
  }
}

void Backplane::heartbeat() {
  nodes_ = 1 + live_nodes(3 * options_.heartbeat).size();
  if (up_) publish(EventKind::heartbeat, {});
}

std::vector<std::string> Backplane::live_nodes(std::chrono::milliseconds max_silence) const {
  std::vector<std::string> out;
  auto now = EventLoop::Clock::now();
  for (const auto& [node, at] : heard_)
    if (now - at <= max_silence) out.push_back(node);
  std::sort(out.begin(), out.end());
  return out;
}

ClusterStatus Backplane::status() const {
  ClusterStatus c = stats();  // the counters; the extra ones are left behind
  c.node = options_.node;
  c.nodes = nodes_;
  return c;
}

BackplaneStats Backplane::stats() const {
  std::lock_guard lock(stats_mutex_);
  BackplaneStats s = stats_;
  s.up = up_;
  s.buffered_bytes = waiting_bytes_;
  return s;
}

}  // namespace keel::cluster
