#include "services/common/input_budget.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "keel/error.h"

namespace keel {
namespace {

// "64k" -> 65536; false when malformed or absurdly large.
bool parse_bytes(std::string_view s, uint64_t& out) {
  if (s.empty()) return false;
  uint64_t unit = 1;
  switch (s.back()) {
    case 'k':
    case 'K': unit = uint64_t{1} << 10; break;
    case 'm':
    case 'M': unit = uint64_t{1} << 20; break;
    case 'g':
    case 'G': unit = uint64_t{1} << 30; break;
    default: break;
  }
  if (unit != 1) s.remove_suffix(1);
  if (s.empty() || s.size() > 15) return false;
  uint64_t n = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    n = n * 10 + static_cast<uint64_t>(c - '0');
  }
  if (n > (uint64_t{1} << 50) / unit) return false;  // 1 PiB/s is no budget anyone means
  out = n * unit;
  return true;
}

std::string bytes_text(uint64_t n) {
  if (n != 0 && n % (uint64_t{1} << 30) == 0) return std::to_string(n >> 30) + "g";
  if (n != 0 && n % (uint64_t{1} << 20) == 0) return std::to_string(n >> 20) + "m";
  if (n != 0 && n % (uint64_t{1} << 10) == 0) return std::to_string(n >> 10) + "k";
  return std::to_string(n);
}

}  // namespace

std::string InputRate::to_string() const {
  if (!enabled()) return "off";
  return bytes_text(bytes_per_second) + "/s," + bytes_text(burst_bytes);
}

InputRate parse_input_rate(std::string_view text) {
  auto bad = [&](std::string_view why) {
    return Error("input rate '" + std::string(text) + "': " + std::string(why) +
                 " (expected BYTES/S[,BURST], e.g. 64k or 64k/s,256k; 0 or off for none)");
  };
  if (text == "off") return {};
  std::string_view rate = text, burst;
  if (size_t comma = text.find(','); comma != std::string_view::npos) {
    rate = text.substr(0, comma);
    burst = text.substr(comma + 1);
    if (burst.empty()) throw bad("empty burst");
  }
  if (rate.ends_with("/s") || rate.ends_with("/S")) rate.remove_suffix(2);
  InputRate out;
  if (!parse_bytes(rate, out.bytes_per_second)) throw bad("not a byte count");
  if (!out.enabled()) {
    if (!burst.empty()) throw bad("a burst needs a rate above 0");
    return {};
  }
  out.burst_bytes = out.bytes_per_second;
  if (!burst.empty()) {
    if (!parse_bytes(burst, out.burst_bytes)) throw bad("burst is not a byte count");
    if (out.burst_bytes == 0) throw bad("burst must be above 0");
  }
  return out;
}

TokenBucket::TokenBucket(InputRate rate, Clock::time_point now)
    : rate_(static_cast<double>(rate.bytes_per_second)),
      burst_(static_cast<double>(rate.burst_bytes)),
      tokens_(burst_),
      last_(now) {}

double TokenBucket::refilled(Clock::time_point now) const {
  if (now <= last_) return tokens_;
  double ns = static_cast<double>(std::chrono::nanoseconds(now - last_).count());
  return std::min(burst_, tokens_ + ns * rate_ / 1e9);
}

void TokenBucket::take(uint64_t bytes, Clock::time_point now) {
  tokens_ = refilled(now) - static_cast<double>(bytes);
  last_ = std::max(last_, now);
}

double TokenBucket::available(Clock::time_point now) const {
  return refilled(now);
}

std::chrono::milliseconds TokenBucket::time_to_clear(Clock::time_point now) const {
  double tokens = refilled(now);
  if (tokens >= 0 || rate_ <= 0) return std::chrono::milliseconds(0);
  double ms = std::ceil(-tokens * 1000 / rate_);
  return std::chrono::milliseconds(static_cast<int64_t>(std::min(ms, 1e9)));
}

bool InputBudget::take(uint64_t bytes, Clock::time_point now) {
  if (bytes == 0) return false;
  bucket_.take(bytes, now);
  if (paused_ || bucket_.available(now) >= 0) return false;
  paused_ = true;
  ++pauses_;
  return true;
}

void InputBudget::on_wake(Server& server, ConnectionId id, Clock::time_point now,
                          Server::TimerTask wake) {
  if (!paused_) return;
  if (bucket_.available(now) < 0) return wait(server, id, now, std::move(wake));
  paused_ = false;
  server.resume_reading(id);
}

void InputBudget::wait(Server& server, ConnectionId id, Clock::time_point now,
                       Server::TimerTask wake) {
  server.pause_reading(id);  // idempotent
  auto delay = std::max(bucket_.time_to_clear(now), std::chrono::milliseconds(1));
  if (server.start_timer(id, delay, std::move(wake)) != 0) return;
  // No timer (the connection is going away): never leave a pause nothing would lift.
  paused_ = false;
  server.resume_reading(id);
}

}  // namespace keel
