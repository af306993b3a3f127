#include "keel/net/buffer.h"

#include <errno.h>
#include <sys/uio.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <algorithm>
#include <utility>

#include "keel/net/event_loop.h"
#include "memory_trim.h"

namespace keel {

namespace detail {
namespace {
std::atomic<size_t> g_freed_since_trim{0};
std::atomic<uint64_t> g_trims{0};
// Milliseconds on the steady clock of the last trim (or of the trim under way).
std::atomic<int64_t> g_last_trim_ms{INT64_MIN / 2};

int64_t now_ms() noexcept {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// On the loop thread: trim now, or when the interval allows (a timer on this loop).
void trim_on_loop() {
  int64_t wait = trim_if_due();
  if (wait <= 0) return;
  if (EventLoop* loop = EventLoop::current())
    loop->run_after(std::chrono::milliseconds(wait), trim_on_loop);
}
}  // namespace

void note_freed(size_t bytes) noexcept {
  if (bytes < kTrimBlockBytes) return;
  size_t before = g_freed_since_trim.fetch_add(bytes, std::memory_order_relaxed);
  if (before >= kTrimAfterBytes || before + bytes < kTrimAfterBytes) return;
  // This free crossed the mark: one loop (this one) sees the trim through.
  if (EventLoop* loop = EventLoop::current()) {
    try {
      loop->defer(trim_on_loop);
    } catch (...) {  // out of memory for the closure: the next crossing tries again
    }
  }
}

int64_t trim_if_due() noexcept {
  if (g_freed_since_trim.load(std::memory_order_relaxed) < kTrimAfterBytes) return -1;
  const int64_t now = now_ms();
  int64_t last = g_last_trim_ms.load(std::memory_order_relaxed);
  const int64_t interval = kTrimInterval.count();
  if (now - last < interval) return interval - (now - last);
  if (!g_last_trim_ms.compare_exchange_strong(last, now)) return 0;  // another thread trims
  // What is freed while trimming counts towards the next trim.
  g_freed_since_trim.store(0, std::memory_order_relaxed);
#if defined(__GLIBC__)
  ::malloc_trim(0);
#endif
  g_trims.fetch_add(1, std::memory_order_relaxed);
  return 0;
}

size_t freed_since_trim() noexcept {
  return g_freed_since_trim.load(std::memory_order_relaxed);
}
uint64_t trims() noexcept {
  return g_trims.load(std::memory_order_relaxed);
}

}  // namespace detail

Buffer::~Buffer() {
  detail::note_freed(capacity_);
}

Buffer::Buffer(Buffer&& other) noexcept
    : data_(std::move(other.data_)),
      capacity_(std::exchange(other.capacity_, 0)),
      read_index_(std::exchange(other.read_index_, kPrependBytes)),
      write_index_(std::exchange(other.write_index_, kPrependBytes)) {}

Buffer& Buffer::operator=(Buffer&& other) noexcept {
  if (this != &other) {
    detail::note_freed(capacity_);
    data_ = std::move(other.data_);
    capacity_ = std::exchange(other.capacity_, 0);
    read_index_ = std::exchange(other.read_index_, kPrependBytes);
    write_index_ = std::exchange(other.write_index_, kPrependBytes);
  }
  return *this;
}

void Buffer::consume(size_t n) noexcept {
  if (n >= readable_bytes()) {
    consume_all();
  } else {
    read_index_ += n;
  }
}

std::string Buffer::take_string(size_t n) {
  n = std::min(n, readable_bytes());
  std::string s(peek(), n);
  consume(n);
  return s;
}

void Buffer::append(const void* data, size_t n) {
  if (n == 0) return;
  ensure_writable(n);
  std::memcpy(write_ptr(), data, n);
  write_index_ += n;
}

void Buffer::prepend(const void* data, size_t n) {
  if (!data_) grow(0);  // an empty buffer may have given its memory back
  read_index_ -= n;
  std::memcpy(data_.get() + read_index_, data, n);
}

void Buffer::ensure_writable(size_t n) {
  if (writable_bytes() >= n) return;
  size_t readable = readable_bytes();
  if (data_ && read_index_ - kPrependBytes + writable_bytes() >= n) {
    // Enough room if the readable bytes move to the front.
    std::memmove(data_.get() + kPrependBytes, peek(), readable);
    read_index_ = kPrependBytes;
    write_index_ = kPrependBytes + readable;
    return;
  }
  grow(n);
}

void Buffer::grow(size_t n) {
  size_t readable = readable_bytes();
  size_t needed = kPrependBytes + readable + n;
  size_t capacity = std::max<size_t>(capacity_ * 2, 1024);
  while (capacity < needed) capacity *= 2;
  std::unique_ptr<char[], AlignedDelete> data(
      static_cast<char*>(::operator new[](capacity, std::align_val_t{kAlignment})));
  if (readable) std::memcpy(data.get() + kPrependBytes, peek(), readable);
  detail::note_freed(capacity_);
  data_ = std::move(data);
  capacity_ = capacity;
  read_index_ = kPrependBytes;
  write_index_ = kPrependBytes + readable;
}

size_t Buffer::find_eol() const noexcept {
  if (empty()) return std::string_view::npos;
  const void* p = std::memchr(peek(), '\n', readable_bytes());
  return p ? static_cast<const char*>(p) - peek() : std::string_view::npos;
}

bool Buffer::release_if_empty() noexcept {
  if (!empty() || !data_) return false;
  detail::note_freed(capacity_);
  data_.reset();
  capacity_ = 0;
  read_index_ = write_index_ = kPrependBytes;
  return true;
}

ssize_t Buffer::read_from(int fd, char* extra, size_t extra_len) {
  iovec iov[2];
  int count = 0;
  size_t writable = writable_bytes();
  if (writable > 0) iov[count++] = {write_ptr(), writable};
  if (extra_len > 0) iov[count++] = {extra, extra_len};
  if (count == 0) {
    ensure_writable(4096);
    writable = writable_bytes();
    iov[count++] = {write_ptr(), writable};
  }
  // One target (the common case: an empty connection reading into the loop's scratch) is a
  // plain read(): readv's iovec import costs measurably on a small-message echo.
  ssize_t n = count == 1 ? ::read(fd, iov[0].iov_base, iov[0].iov_len) : ::readv(fd, iov, count);
  if (n <= 0) return n;
  size_t got = static_cast<size_t>(n);
  if (got <= writable) {
    write_index_ += got;
  } else {
    write_index_ += writable;
    int saved = errno;
    append(extra, got - writable);
    errno = saved;
  }
  return n;
}

}  // namespace keel
