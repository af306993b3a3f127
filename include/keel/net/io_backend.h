// IoBackend: how an EventLoop waits for its descriptors. epoll is the default; uring runs the
// same readiness model on an io_uring ring (liburing), so every service, stream and engine works
// unchanged on either. A loop asked for uring where the kernel refuses io_uring (too old,
// io_uring_disabled, seccomp) uses epoll and says so once on stderr; `keel` checks first and
// logs the reason instead.
// Thread safety: all functions from any thread; set_default_io_backend() before loops are made.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace keel {

enum class IoBackend : uint8_t { epoll, uring };

std::string_view to_string(IoBackend backend) noexcept;
// "epoll" or "uring".
std::optional<IoBackend> parse_io_backend(std::string_view text) noexcept;

// The backend new loops use unless told otherwise: the last set_default_io_backend(), else the
// KEEL_IO environment variable ("epoll" or "uring"; anything else is reported once and ignored),
// else epoll.
IoBackend default_io_backend() noexcept;
void set_default_io_backend(IoBackend backend) noexcept;

// Whether this process can set up an io_uring ring; if not, why (one line).
bool io_uring_available(std::string* why);

}  // namespace keel
