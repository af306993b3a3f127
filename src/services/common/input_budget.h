// Flood control: a per-client input budget (bytes per second with a burst) for services where one
// client's input becomes many clients' output (chat rooms, hub topics). A client over its budget
// has its reading paused, so TCP pushes back on it, until the budget has refilled; nothing it
// sent is lost, it is only slowed down. `--max-input-rate`: docs/operations.md, "Flood control".
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "keel/service.h"

namespace keel {

// Bytes per second a client may send, and how much it may send at once after being quiet.
struct InputRate {
  uint64_t bytes_per_second = 0;  // 0: no budget
  uint64_t burst_bytes = 0;

  bool enabled() const noexcept { return bytes_per_second > 0; }
  // "64k/s,256k", or "off".
  std::string to_string() const;
};

// Parses "BYTES[/s][,BURST]": integers with an optional k, m or g suffix (powers of 1024), e.g.
// "64k", "64k/s,256k", "1m,4m"; "0" or "off" turns the budget off. The burst defaults to one
// second's worth (the rate). Throws keel::Error naming the text when it is malformed.
InputRate parse_input_rate(std::string_view text);

// A token bucket counted in bytes that may go into debt: a message larger than what is left is
// taken whole (never split, delayed inside the service or refused), and its sender then waits
// until the debt is paid back. Starts full. Time is passed in, so tests drive it with their own
// clock.
// Thread safety: none; its owner guards it.
class TokenBucket {
 public:
  using Clock = std::chrono::steady_clock;

  TokenBucket(InputRate rate, Clock::time_point now);

  void take(uint64_t bytes, Clock::time_point now);
  // Bytes that may be taken now without debt; negative while in debt.
  double available(Clock::time_point now) const;
  // How long until the debt is paid back (available() >= 0); zero when not in debt.
  std::chrono::milliseconds time_to_clear(Clock::time_point now) const;

 private:
  double refilled(Clock::time_point now) const;

  double rate_;  // bytes per second
  double burst_;
  double tokens_;
  Clock::time_point last_;
};

// Flood control for one connection: the service charges it what it accepted from the connection
// in on_data; over budget, the connection's reading is paused and a timer resumes it once the
// debt is paid. What the service already read is still its to handle: the pause only stops
// further reads, so no input is lost. A disabled budget (rate 0) does nothing.
// Thread safety: part of its owner's per-connection state, used under the service's guard and
// only on the connection's own thread (inside its callbacks and timers), as Server's timers are.
class InputBudget {
 public:
  using Clock = TokenBucket::Clock;

  InputBudget(InputRate rate, Clock::time_point now)
      : enabled_(rate.enabled()), bucket_(rate, now) {}

  bool enabled() const noexcept { return enabled_; }

  // Inside a service callback for id, after accepting `bytes` of id's input. If that puts id over
  // budget, pauses its reading and arms a timer that runs make_wake()'s task, which should take
  // the service's guard, find this budget again and call on_wake. (make_wake is called only
  // then, so the common case builds no task.)
  template <class MakeWake>
  void charge(Server& server, ConnectionId id, uint64_t bytes, Clock::time_point now,
              MakeWake&& make_wake) {
    if (enabled_ && take(bytes, now)) wait(server, id, now, make_wake());
  }
  // From the wake task: resumes reading once the debt is paid, else waits again.
  void on_wake(Server& server, ConnectionId id, Clock::time_point now, Server::TimerTask wake);

  bool paused() const noexcept { return paused_; }
  // How many times the connection was paused for going over its budget.
  uint64_t pauses() const noexcept { return pauses_; }

 private:
  // Takes bytes from the bucket; true when that starts a pause (the caller then waits).
  bool take(uint64_t bytes, Clock::time_point now);
  // Pauses id until the debt is paid: a timer runs wake then.
  void wait(Server& server, ConnectionId id, Clock::time_point now, Server::TimerTask wake);

  bool enabled_;
  bool paused_ = false;
  uint64_t pauses_ = 0;
  TokenBucket bucket_;
};

}  // namespace keel
