#include "cluster/redis_link.h"

#include <pthread.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/epoll.h>
#include <time.h>

#include <algorithm>

namespace keel::cluster {

namespace {

// hiredis writes with write(2), and a write to a connection Redis has closed raises SIGPIPE,
// which keel promises never reaches the process (its own sockets use MSG_NOSIGNAL). Unless the
// process ignores SIGPIPE (the keel program does), the signal is blocked in this thread around
// hiredis's write, and one it raised is taken back before the mask is restored.
class SigpipeGuard {
 public:
  SigpipeGuard() {
    struct sigaction now {};
    if (::sigaction(SIGPIPE, nullptr, &now) != 0 || now.sa_handler == SIG_IGN) return;
    sigemptyset(&pipe_);
    sigaddset(&pipe_, SIGPIPE);
    sigset_t pending;
    sigpending(&pending);
    was_pending_ = sigismember(&pending, SIGPIPE) == 1;  // someone else's: left alone
    active_ = ::pthread_sigmask(SIG_BLOCK, &pipe_, &old_) == 0;
  }
  ~SigpipeGuard() {
    if (!active_) return;
    sigset_t pending;
    sigpending(&pending);
    if (!was_pending_ && sigismember(&pending, SIGPIPE) == 1) {
      timespec zero{};
      ::sigtimedwait(&pipe_, nullptr, &zero);
    }
    ::pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }
  SigpipeGuard(const SigpipeGuard&) = delete;
  SigpipeGuard& operator=(const SigpipeGuard&) = delete;

 private:
  sigset_t pipe_{}, old_{};
  bool was_pending_ = false;
  bool active_ = false;
};

}  // namespace

struct RedisLink::Pending {
  RedisLink* link;
  ReplyFn done;
  bool internal;  // the link's own SELECT / PING
};

std::string describe_reply(const redisReply* reply) {
  if (reply == nullptr) return "no reply (the link dropped)";
  switch (reply->type) {
    case REDIS_REPLY_ERROR:
    case REDIS_REPLY_STATUS:
    case REDIS_REPLY_STRING: return std::string(reply->str, reply->len);
    case REDIS_REPLY_NIL: return "(nil)";
    case REDIS_REPLY_INTEGER: return std::to_string(reply->integer);
    case REDIS_REPLY_ARRAY: return "(array of " + std::to_string(reply->elements) + ")";
  }
  return "(reply type " + std::to_string(reply->type) + ")";
}

RedisLink::RedisLink(EventLoop& loop, Options options, StateFn on_state)
    : loop_(loop), options_(std::move(options)), on_state_(std::move(on_state)) {}

RedisLink::~RedisLink() {
  stop();
}

void RedisLink::start() {
  loop_.assert_in_loop();
  if (state_ != State::idle) return;
  backoff_ = options_.backoff_min;
  connect();
  health_timer_ = loop_.run_every(std::chrono::milliseconds(100), [this] { check_health(); });
}

void RedisLink::stop() {
  if (state_ == State::stopped) return;
  const bool was_up = state_ == State::up;
  state_ = State::stopped;
  for (TimerId* t : {&retry_timer_, &connect_timer_, &health_timer_})
    if (*t) loop_.cancel_timer(std::exchange(*t, 0));
  forget_context();
  if (was_up && on_state_) on_state_(false, "stopped");
}

void RedisLink::connect() {
  retry_timer_ = 0;
  if (state_ == State::stopped) return;
  const RedisAddress& a = options_.address;
  redisAsyncContext* ac = a.unix_path.empty() ? redisAsyncConnect(a.host.c_str(), a.port)
                                              : redisAsyncConnectUnix(a.unix_path.c_str());
  if (ac == nullptr || ac->err) {
    std::string why = ac ? std::string(ac->errstr) : "out of memory";
    if (ac) redisAsyncFree(ac);
    last_error_ = "connect " + a.to_string() + ": " + why;
    connect_failed();
    return;
  }
  ac_ = ac;
  ac->data = this;
  ac->ev.data = this;
  ac->ev.addRead = add_read;
  ac->ev.delRead = del_read;
  ac->ev.addWrite = add_write;
  ac->ev.delWrite = del_write;
  ac->ev.cleanup = cleanup;
  redisAsyncSetConnectCallback(ac, [](const redisAsyncContext* c, int status) {
    static_cast<RedisLink*>(c->data)->on_connected(status);
  });
  redisAsyncSetDisconnectCallback(ac, [](const redisAsyncContext* c, int status) {
    static_cast<RedisLink*>(c->data)->on_disconnected(status);
  });
  state_ = State::connecting;
  connect_timer_ = loop_.run_after(options_.connect_timeout, [this] {
    connect_timer_ = 0;
    if (state_ == State::connecting || state_ == State::handshake)
      drop("no answer within " + std::to_string(options_.connect_timeout.count()) + " ms");
  });
}

void RedisLink::on_connected(int status) {
  if (status != REDIS_OK) {
    // hiredis frees the context after this callback.
    std::string why = ac_ && ac_->errstr ? ac_->errstr : "connect failed";
    ac_ = nullptr;  // cleanup() unwatches the descriptor as hiredis frees the context
    clear_pending();
    if (connect_timer_) loop_.cancel_timer(std::exchange(connect_timer_, 0));
    last_error_ = "connect " + options_.address.to_string() + ": " + why;
    state_ = State::idle;
    connect_failed();
    return;
  }
  state_ = State::handshake;
  // AUTH first when there is a password (its reply is checked like the last one's: a refusal
  // drops the link with Redis's words, e.g. WRONGPASS), then SELECT or PING.
  const RedisAddress& a = options_.address;
  auto checked = [this](const redisReply* r) {
    if (r != nullptr && r->type == REDIS_REPLY_ERROR) on_handshake(r);
  };
  if (!a.password.empty()) {
    if (a.user.empty())
      queue({"AUTH", a.password}, checked, true);
    else
      queue({"AUTH", a.user, a.password}, checked, true);
  }
  std::string db = std::to_string(a.db);
  auto done = [this](const redisReply* r) { on_handshake(r); };
  if (a.db != 0)
    queue({"SELECT", db}, done, true);
  else
    queue({"PING"}, done, true);
}

void RedisLink::on_handshake(const redisReply* reply) {
  if (state_ != State::handshake) return;
  if (reply == nullptr || reply->type == REDIS_REPLY_ERROR) {
    // An error reply keeps the connection; a refusal (wrong db, auth needed) would repeat.
    if (reply)
      loop_.defer([this, alive = std::weak_ptr<char>(alive_), why = describe_reply(reply)] {
        if (!alive.expired()) drop("refused: " + why);
      });
    return;
  }
  if (connect_timer_) loop_.cancel_timer(std::exchange(connect_timer_, 0));
  state_ = State::up;
  failures_in_a_row_ = 0;
  backoff_ = options_.backoff_min;
  last_error_.clear();
  ++stats_.connects;
  spdlog::info("redis link {}: connected to {}", options_.name, options_.address.to_string());
  if (on_state_) on_state_(true, "");
}

void RedisLink::on_disconnected(int status) {
  // Called by hiredis when the server closed or an I/O error happened (it frees the context
  // after this), and from inside our own redisAsyncFree (freeing_).
  if (freeing_) return;
  std::string why = status == REDIS_OK ? "closed" : (ac_ && ac_->errstr ? ac_->errstr : "error");
  ac_ = nullptr;  // cleanup() has unwatched the descriptor
  const bool was_up = state_ == State::up;
  clear_pending();
  if (connect_timer_) loop_.cancel_timer(std::exchange(connect_timer_, 0));
  if (state_ == State::stopped) return;
  state_ = State::idle;
  last_error_ = "link to " + options_.address.to_string() + " lost: " + why;
  if (was_up)
    went_down();
  else
    retry_later();
}

void RedisLink::went_down() {
  ++stats_.drops;
  spdlog::warn("redis link {}: {}", options_.name, last_error_);
  if (on_state_) on_state_(false, last_error_);
  retry_later();
}

void RedisLink::clear_pending() {
  sent_.clear();
  stats_.pending_bytes = 0;
  stats_.pending_commands = 0;
}

void RedisLink::forget_context() {
  if (ac_ == nullptr) return;
  redisAsyncContext* ac = std::exchange(ac_, nullptr);
  clear_pending();
  freeing_ = true;
  redisAsyncFree(ac);  // pending callbacks get nullptr; cleanup() unwatches the descriptor
  freeing_ = false;
  watched_fd_ = -1;
  interest_ = 0;
}

void RedisLink::drop(const std::string& why) {
  if (state_ == State::stopped || state_ == State::idle) return;
  const bool was_up = state_ == State::up;
  state_ = State::idle;
  if (connect_timer_) loop_.cancel_timer(std::exchange(connect_timer_, 0));
  forget_context();
  last_error_ = "link to " + options_.address.to_string() + " dropped: " + why;
  if (was_up)
    went_down();
  else
    connect_failed();
}

void RedisLink::connect_failed() {
  ++stats_.failed_connects;
  // The first failure in a row is told (logged, and to on_state before the link was ever up:
  // a node that cannot reach Redis at start says so), then every 20th, not every attempt.
  if (failures_in_a_row_++ % 20 == 0)
    spdlog::warn("redis link {}: {} (retrying every {} ms at most)", options_.name, last_error_,
                 options_.backoff_max.count());
  if (on_state_ && failures_in_a_row_ == 1 && stats_.connects == 0) on_state_(false, last_error_);
  retry_later();
}

void RedisLink::retry_later() {
  if (state_ == State::stopped || retry_timer_) return;
  std::chrono::milliseconds wait = backoff_;
  backoff_ = std::min(options_.backoff_max, backoff_ * 2);
  retry_timer_ = loop_.run_after(wait, [this] { connect(); });
}

void RedisLink::check_health() {
  if (state_ != State::up) return;
  auto now = EventLoop::Clock::now();
  if (!sent_.empty()) {
    // Stalled: nothing answered for reply_timeout while commands wait. (Not the oldest
    // command's age: a burst of 8 MiB of pipelined writes is answered over a while, and each
    // reply is progress.)
    if (now - std::max(sent_.front().at, last_reply_) > options_.reply_timeout)
      drop("no reply within " + std::to_string(options_.reply_timeout.count()) + " ms");
    return;
  }
  if (now - last_reply_ >= options_.ping_interval) queue({"PING"}, nullptr, true);
}

bool RedisLink::command(const std::vector<std::string_view>& argv, ReplyFn done) {
  loop_.assert_in_loop();
  if (state_ != State::up || stats_.pending_bytes >= options_.max_pending_bytes) {
    ++stats_.refused;
    return false;
  }
  return queue(argv, std::move(done), false);
}

bool RedisLink::queue(const std::vector<std::string_view>& argv, ReplyFn done, bool internal) {
  std::vector<const char*> args;
  std::vector<size_t> lengths;
  size_t bytes = 16;
  for (std::string_view a : argv) {
    args.push_back(a.data());
    lengths.push_back(a.size());
    bytes += a.size() + 16;
  }
  auto* p = new Pending{this, std::move(done), internal};
  if (redisAsyncCommandArgv(ac_, reply_trampoline, p, static_cast<int>(args.size()), args.data(),
                            lengths.data()) != REDIS_OK) {
    delete p;
    if (!internal) ++stats_.refused;
    return false;
  }
  sent_.push_back({EventLoop::Clock::now(), bytes});
  stats_.pending_bytes += bytes;
  ++stats_.pending_commands;
  return true;
}

void RedisLink::reply_trampoline(redisAsyncContext*, void* reply, void* privdata) {
  auto* p = static_cast<Pending*>(privdata);
  RedisLink* self = p->link;
  const auto* r = static_cast<const redisReply*>(reply);
  if (r != nullptr && !self->sent_.empty()) {
    self->stats_.pending_bytes -= self->sent_.front().bytes;
    --self->stats_.pending_commands;
    self->sent_.pop_front();
    self->last_reply_ = EventLoop::Clock::now();
  }
  ReplyFn done = std::move(p->done);
  delete p;
  if (done) done(r);
}

void RedisLink::handle_events(uint32_t events) {
  redisAsyncContext* ac = ac_;
  if (ac == nullptr) return;
  if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) redisAsyncHandleRead(ac);
  if (ac_ == ac && (events & (EPOLLOUT | EPOLLERR))) {
    SigpipeGuard guard;
    redisAsyncHandleWrite(ac);
  }
}

void RedisLink::set_interest(uint32_t add, uint32_t remove) {
  if (ac_ == nullptr) return;
  uint32_t wanted = (interest_ | add) & ~remove;
  int fd = ac_->c.fd;
  if (fd < 0) return;
  if (watched_fd_ != fd) {
    loop_.watch(fd, wanted, this);
    watched_fd_ = fd;
  } else if (wanted != interest_) {
    if (int err = loop_.rewatch(fd, wanted, this); err != 0) {
      loop_.defer([this, alive = std::weak_ptr<char>(alive_)] {
        if (!alive.expired()) drop("epoll refused the descriptor");
      });
      return;
    }
  }
  interest_ = wanted;
}

void RedisLink::add_read(void* self) {
  static_cast<RedisLink*>(self)->set_interest(EPOLLIN, 0);
}
void RedisLink::del_read(void* self) {
  static_cast<RedisLink*>(self)->set_interest(0, EPOLLIN);
}
void RedisLink::add_write(void* self) {
  static_cast<RedisLink*>(self)->set_interest(EPOLLOUT, 0);
}
void RedisLink::del_write(void* self) {
  static_cast<RedisLink*>(self)->set_interest(0, EPOLLOUT);
}
void RedisLink::cleanup(void* self) {
  auto* link = static_cast<RedisLink*>(self);
  if (link->watched_fd_ >= 0) link->loop_.unwatch(link->watched_fd_);
  link->watched_fd_ = -1;
  link->interest_ = 0;
}

}  // namespace keel::cluster
