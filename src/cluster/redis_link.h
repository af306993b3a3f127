// RedisLink: one connection to a Redis server, driven by a keel EventLoop. hiredis's async API
// does the protocol; this loop is its event library (watch/unwatch, timers), so no thread is
// spent per Redis connection and nothing blocks the loop: the host name was resolved at start-up
// (RedisAddress), the connect is non-blocking and bounded by connect_timeout.
//
// Up and down: the link is up once Redis has answered (SELECT, or PING for db 0). A completed
// TCP connect is not a live server: a stopped redis-server still completes connects into its
// listen backlog. While up, every command must be answered within reply_timeout, and a link
// with nothing pending sends a PING every ping_interval; a stalled or vanished Redis is so found
// within about reply_timeout + ping_interval, and the link is dropped and remade. Reconnects back
// off exponentially from backoff_min to backoff_max (reset once up). on_state is told of each
// change, with the reason when down.
//
// Commands: command() queues one (argv form, binary-safe) and returns false, without queuing,
// while the link is down or when max_pending_bytes are already awaiting replies: the caller
// decides whether to keep it for later or count it lost. Replies come in order; a command whose
// reply will never come (the link dropped) gets its callback with nullptr. Pub/sub mode is not
// supported (its replies are not one per command); read a stream with XREAD BLOCK instead,
// with a block time under reply_timeout.
//
// Thread safety: every method on the loop's thread (the constructor and destructor included, or
// while the loop is not running). Callbacks run on the loop thread, never inside the call that
// queued the command. A callback may call command() and stop(), but must not destroy the link.
#pragma once

#include <hiredis/async.h>

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "cluster/redis_address.h"
#include "keel/net/event_loop.h"

namespace keel::cluster {

class RedisLink final : public IoHandler {
 public:
  struct Options {
    RedisAddress address;
    std::string name = "redis";  // in log lines: "redis link <name> ..."
    std::chrono::milliseconds connect_timeout{2000};
    std::chrono::milliseconds reply_timeout{3000};
    std::chrono::milliseconds ping_interval{1000};
    std::chrono::milliseconds backoff_min{100};
    std::chrono::milliseconds backoff_max{5000};
    size_t max_pending_bytes = 8u << 20;
  };
  // reply is nullptr when the link went down before the reply came.
  using ReplyFn = std::function<void(const redisReply* reply)>;
  // up: true once Redis answers; false with the reason when an up link drops or a connect fails.
  using StateFn = std::function<void(bool up, const std::string& why)>;

  struct Stats {
    uint64_t connects = 0;  // times the link came up
    uint64_t drops = 0;     // times an up link went down
    uint64_t failed_connects = 0;
    uint64_t refused = 0;  // command() returned false
    size_t pending_commands = 0;
    size_t pending_bytes = 0;
  };

  RedisLink(EventLoop& loop, Options options, StateFn on_state);
  ~RedisLink();
  RedisLink(const RedisLink&) = delete;
  RedisLink& operator=(const RedisLink&) = delete;

  // Starts connecting (and reconnecting until stop()).
  void start();
  // Drops the connection; pending callbacks get nullptr. No reconnect after this.
  void stop();
  bool up() const noexcept { return state_ == State::up; }
  // Queues argv as one command. False (nothing queued) when down or over max_pending_bytes.
  bool command(const std::vector<std::string_view>& argv, ReplyFn done);
  const Stats& stats() const noexcept { return stats_; }
  // Why the link is down (empty while up or before the first attempt).
  const std::string& last_error() const noexcept { return last_error_; }
  const Options& options() const noexcept { return options_; }

 private:
  enum class State { idle, connecting, handshake, up, stopped };
  struct Pending;  // one command awaiting its reply

  void handle_events(uint32_t events) override;
  void connect();
  void on_connected(int status);
  void on_disconnected(int status);
  void on_handshake(const redisReply* reply);
  // Frees the context (pending callbacks get nullptr), tells on_state, and schedules a retry.
  void drop(const std::string& why);
  void retry_later();
  // An up link went down (last_error_ says why): counted, logged, told, retried.
  void went_down();
  // No command awaits a reply any more (the context that held them is gone).
  void clear_pending();
  void connect_failed();
  void check_health();
  bool queue(const std::vector<std::string_view>& argv, ReplyFn done, bool internal);
  void set_interest(uint32_t add, uint32_t remove);
  void forget_context();
  static void reply_trampoline(redisAsyncContext* ac, void* reply, void* privdata);

  // hiredis event hooks (ev.data is this).
  static void add_read(void* self);
  static void del_read(void* self);
  static void add_write(void* self);
  static void del_write(void* self);
  static void cleanup(void* self);

  EventLoop& loop_;
  Options options_;
  StateFn on_state_;
  State state_ = State::idle;
  redisAsyncContext* ac_ = nullptr;
  int watched_fd_ = -1;
  uint32_t interest_ = 0;
  bool freeing_ = false;  // inside redisAsyncFree: hiredis calls us back from there
  std::chrono::milliseconds backoff_{0};
  uint64_t failures_in_a_row_ = 0;
  TimerId retry_timer_ = 0;
  TimerId connect_timer_ = 0;
  TimerId health_timer_ = 0;
  // Send times and sizes of the commands awaiting replies, oldest first (replies come in order).
  struct Sent {
    EventLoop::Clock::time_point at;
    size_t bytes;
  };
  std::deque<Sent> sent_;
  EventLoop::Clock::time_point last_reply_{};
  std::string last_error_;
  Stats stats_;
  // Deferred tasks hold it weakly: a link destroyed before they run is left alone.
  std::shared_ptr<char> alive_ = std::make_shared<char>();
};

// The reply as text for an error message: "ERR ...", "(nil)", or the type.
std::string describe_reply(const redisReply* reply);

}  // namespace keel::cluster
