// Giving freed buffer memory back to the kernel. glibc keeps what a process frees in its arenas
// (one per thread that allocated, up to 8 per core), and blocks of a megabyte or two, as a
// connection's buffers grow under a bulk transfer, are not returned when freed once glibc's
// dynamic mmap threshold has risen past them: after 50 clients push 10 MB each and reset, the
// process stays at ~100 MiB with no client left. So the big blocks a Buffer frees are counted
// (process-wide), and once 8 MiB of them wait, malloc_trim(0) returns every arena's free pages;
// at most once a second, so a bulk workload that grows and frees buffers all the time pays for
// one trim a second at most (bench/results and docs/operations.md, "Memory").
// Thread safety: every function may be called from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>

namespace keel::detail {

// Frees smaller than this are left to the allocator's own reuse (they are not what piles up).
inline constexpr size_t kTrimBlockBytes = 64 * 1024;
// Counted bytes freed since the last trim that make a trim worth its cost.
inline constexpr size_t kTrimAfterBytes = 8 * 1024 * 1024;
inline constexpr std::chrono::milliseconds kTrimInterval{1000};

// Records a freed block of `bytes` (only big ones count). On an event-loop thread, the first
// free that passes kTrimAfterBytes has the loop trim at the end of its turn (or, inside the
// interval, when the interval is over), so a burst of closes costs one trim.
void note_freed(size_t bytes) noexcept;

// Trims when kTrimAfterBytes wait and the interval since the last trim is over. Returns -1
// when nothing waits, 0 when it trimmed (or another thread is trimming), else how many
// milliseconds until a trim may run: a caller with no loop (the threads engine's control
// thread) polls again then.
int64_t trim_if_due() noexcept;

// Bytes counted since the last trim, and trims so far (for tests and stats).
size_t freed_since_trim() noexcept;
uint64_t trims() noexcept;

}  // namespace keel::detail
