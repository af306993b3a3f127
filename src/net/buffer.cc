#include "keel/net/buffer.h"

#include <errno.h>
#include <sys/uio.h>

#include <algorithm>
#include <utility>

namespace keel {

Buffer::Buffer(Buffer&& other) noexcept
    : data_(std::move(other.data_)),
      capacity_(std::exchange(other.capacity_, 0)),
      read_index_(std::exchange(other.read_index_, kPrependBytes)),
      write_index_(std::exchange(other.write_index_, kPrependBytes)) {}

Buffer& Buffer::operator=(Buffer&& other) noexcept {
  if (this != &other) {
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
