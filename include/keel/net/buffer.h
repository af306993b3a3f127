// Buffer: a contiguous byte queue with a small prepend area (for length headers), growing on
// demand and able to give its memory back when empty, so idle connections hold none. Big blocks
// it frees are counted, and the process's free memory is returned to the kernel once enough
// has piled up (src/net/memory_trim.h).
// Thread safety: not thread-safe; owned by one connection on one loop.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstring>
#include <memory>
#include <new>
#include <string>
#include <string_view>

namespace keel {

class Buffer {
 public:
  // Reads land at a cache-line boundary: the kernel's copy into user memory (rep movsb) is
  // several times slower into a misaligned destination on some CPUs (measured: AMD EPYC).
  static constexpr size_t kAlignment = 64;
  static constexpr size_t kPrependBytes = kAlignment;

  Buffer() = default;
  Buffer(Buffer&&) noexcept;
  Buffer& operator=(Buffer&&) noexcept;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  ~Buffer();

  size_t readable_bytes() const noexcept { return write_index_ - read_index_; }
  bool empty() const noexcept { return write_index_ == read_index_; }
  size_t writable_bytes() const noexcept {
    return capacity_ > write_index_ ? capacity_ - write_index_ : 0;
  }
  size_t prependable_bytes() const noexcept { return read_index_; }
  // Bytes of memory held (0 after release()).
  size_t capacity() const noexcept { return capacity_; }

  const char* peek() const noexcept { return data_ ? data_.get() + read_index_ : nullptr; }
  std::string_view view() const noexcept { return {peek(), readable_bytes()}; }

  // Drops n readable bytes from the front (n <= readable_bytes()).
  void consume(size_t n) noexcept;
  void consume_all() noexcept { read_index_ = write_index_ = kPrependBytes; }
  std::string take_string(size_t n);
  std::string take_all() { return take_string(readable_bytes()); }

  void append(const void* data, size_t n);
  void append(std::string_view s) { append(s.data(), s.size()); }
  // Puts n bytes in front of the readable bytes (n <= prependable_bytes()).
  void prepend(const void* data, size_t n);

  // Makes room for n more bytes (moving data to the front or growing).
  void ensure_writable(size_t n);
  char* write_ptr() noexcept { return data_.get() + write_index_; }
  void commit(size_t n) noexcept { write_index_ += n; }

  // Position of the first '\n' in the readable bytes, or npos.
  size_t find_eol() const noexcept;

  // Frees the memory if no bytes are held. Returns whether it did.
  bool release_if_empty() noexcept;

  // One readv: into this buffer's free space, then into extra[0..extra_len). Bytes that land in
  // extra are appended (the buffer grows). Returns what read returned; errno is preserved.
  ssize_t read_from(int fd, char* extra, size_t extra_len);

 private:
  void grow(size_t n);

  struct AlignedDelete {
    void operator()(char* p) const noexcept {
      ::operator delete[](p, std::align_val_t{kAlignment});
    }
  };
  std::unique_ptr<char[], AlignedDelete> data_;
  size_t capacity_ = 0;
  size_t read_index_ = kPrependBytes;
  size_t write_index_ = kPrependBytes;
};

}  // namespace keel
