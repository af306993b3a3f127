#include "cli/timeout_flags.h"

#include <charconv>
#include <vector>

#include "cli/validators.h"
#include "keel/error.h"

namespace keel::cli {
namespace {

std::chrono::milliseconds to_ms(double seconds) {
  return std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000 + 0.5));
}

}  // namespace

std::optional<Keepalive> parse_keepalive(const std::string& text) {
  if (text == "off" || text == "0") return std::nullopt;
  std::vector<int> parts;
  const char* p = text.data();
  const char* end = p + text.size();
  while (p <= end && parts.size() < 4) {
    int v = 0;
    auto [next, ec] = std::from_chars(p, end, v);
    if (ec != std::errc() || v <= 0)
      throw Error(
          "expected IDLE,INTERVAL,COUNT (positive integers: seconds, "
          "seconds, probes) or off, got '" +
          text + "'");
    parts.push_back(v);
    if (next == end) break;
    if (*next != ',')
      throw Error("expected IDLE,INTERVAL,COUNT separated by commas, got '" + text + "'");
    p = next + 1;
  }
  if (parts.size() != 3)
    throw Error("expected three values IDLE,INTERVAL,COUNT, got '" + text + "'");
  if (parts[0] > 32767 || parts[1] > 32767 || parts[2] > 127)
    throw Error(
        "the kernel takes IDLE and INTERVAL up to 32767 s and COUNT up to "
        "127, got '" +
        text + "'");
  return Keepalive{parts[0], parts[1], parts[2]};
}

void add_timeout_flags(CLI::App& cmd, TimeoutFlags& f) {
  cmd.add_option("--idle-timeout", f.idle_s,
                 "Close a connection after this many seconds with no byte either way; 0 = never")
      ->check(FiniteRange(0.0, 30.0 * 86400))
      ->capture_default_str();
  cmd.add_option("--half-close-timeout", f.half_close_s,
                 "After keel sends its FIN, seconds the peer gets to send its own before the "
                 "connection is closed; 0 = no limit")
      ->check(FiniteRange(0.0, 30.0 * 86400))
      ->capture_default_str();
  cmd.add_option("--keepalive", f.keepalive,
                 "TCP keepalive IDLE,INTERVAL,COUNT (seconds idle before the first probe, "
                 "seconds between probes, unanswered probes before the peer is declared gone; "
                 "also bounds unacknowledged data the same way) or off")
      ->check(ParsedBy([](const std::string& text) { parse_keepalive(text); },
                       "IDLE,INTERVAL,COUNT|off"))
      ->capture_default_str();
}

void apply_timeout_flags(const TimeoutFlags& f, ConnectionTimeouts& timeouts,
                         SocketOptions& socket) {
  timeouts.idle = to_ms(f.idle_s);
  timeouts.half_close = to_ms(f.half_close_s);
  if (auto k = parse_keepalive(f.keepalive)) {
    socket.keep_alive = true;
    socket.keep_alive_idle_s = k->idle_s;
    socket.keep_alive_interval_s = k->interval_s;
    socket.keep_alive_count = k->count;
    socket.user_timeout_ms = (k->idle_s + k->interval_s * k->count) * 1000;
  }
}

}  // namespace keel::cli
