#include "keel/net/io_backend.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>

namespace keel {
namespace {

constexpr uint8_t kUnset = 0xff;
std::atomic<uint8_t> g_default{kUnset};

IoBackend from_environment() noexcept {
  const char* text = std::getenv("KEEL_IO");
  if (!text || !*text) return IoBackend::epoll;
  if (auto backend = parse_io_backend(text)) return *backend;
  std::fprintf(stderr, "keel: KEEL_IO=%s is not epoll or uring: using epoll\n", text);
  return IoBackend::epoll;
}

}  // namespace

std::string_view to_string(IoBackend backend) noexcept {
  return backend == IoBackend::uring ? "uring" : "epoll";
}

std::optional<IoBackend> parse_io_backend(std::string_view text) noexcept {
  if (text == "epoll") return IoBackend::epoll;
  if (text == "uring" || text == "io_uring") return IoBackend::uring;
  return std::nullopt;
}

IoBackend default_io_backend() noexcept {
  uint8_t value = g_default.load(std::memory_order_acquire);
  if (value != kUnset) return static_cast<IoBackend>(value);
  // The first caller reads the environment; a race reads it twice and agrees.
  IoBackend backend = from_environment();
  uint8_t expected = kUnset;
  g_default.compare_exchange_strong(expected, static_cast<uint8_t>(backend),
                                    std::memory_order_acq_rel);
  return static_cast<IoBackend>(g_default.load(std::memory_order_acquire));
}

void set_default_io_backend(IoBackend backend) noexcept {
  g_default.store(static_cast<uint8_t>(backend), std::memory_order_release);
}

}  // namespace keel
