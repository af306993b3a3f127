// Micro benchmarks of keel::Buffer, the byte queue on every connection's data path.
// Every benchmark reports bytes/s (SetBytesProcessed) so sizes compare directly.
//
//   build/release/bench/keel_micro_bench                      # all
//   build/release/bench/keel_micro_bench --benchmark_filter=ReadFrom
#include <benchmark/benchmark.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "keel/net/buffer.h"

namespace {

constexpr size_t kExtraBytes = 64 * 1024;  // the per-loop scratch area the reactor reads into

void set_bytes(benchmark::State& state, size_t per_iteration) {
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) *
                          static_cast<int64_t>(per_iteration));
}

// append(n) then consume(n): the steady state of an echo connection whose output drains.
void BM_AppendConsume(benchmark::State& state) {
  const size_t n = static_cast<size_t>(state.range(0));
  std::string payload(n, 'x');
  keel::Buffer buf;
  for (auto _ : state) {
    buf.append(payload);
    benchmark::DoNotOptimize(buf.peek());
    buf.consume(n);
  }
  set_bytes(state, n);
}
BENCHMARK(BM_AppendConsume)->Arg(64)->Arg(16 * 1024);

// append(n) then take_string(n): copying a message out (line and frame codecs do this).
void BM_TakeString(benchmark::State& state) {
  const size_t n = static_cast<size_t>(state.range(0));
  std::string payload(n, 'x');
  keel::Buffer buf;
  for (auto _ : state) {
    buf.append(payload);
    std::string s = buf.take_string(n);
    benchmark::DoNotOptimize(s.data());
  }
  set_bytes(state, n);
}
BENCHMARK(BM_TakeString)->Arg(64)->Arg(16 * 1024);

// find_eol over a 4 KiB line whose '\n' is the last byte: the worst case for one line.
void BM_FindEol(benchmark::State& state) {
  const size_t n = static_cast<size_t>(state.range(0));
  std::string line(n - 1, 'a');
  line.push_back('\n');
  keel::Buffer buf;
  buf.append(line);
  for (auto _ : state) {
    size_t pos = buf.find_eol();
    benchmark::DoNotOptimize(pos);
  }
  set_bytes(state, n);
}
BENCHMARK(BM_FindEol)->Arg(4 * 1024);

// write(n) into one end of a Unix socketpair, then read_from the other end with a 64 KiB extra
// area until all n bytes are in the buffer, then consume them. Timed: the write, the readv
// calls and the copies; so this is a syscall-bound number, the cost per read on the data path.
void BM_ReadFrom(benchmark::State& state) {
  const size_t n = static_cast<size_t>(state.range(0));
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
    state.SkipWithError("socketpair failed");
    return;
  }
  int sndbuf = static_cast<int>(4 * n + 4096);
  setsockopt(fds[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
  setsockopt(fds[1], SOL_SOCKET, SO_RCVBUF, &sndbuf, sizeof sndbuf);
  std::string payload(n, 'x');
  std::vector<char> extra(kExtraBytes);
  keel::Buffer buf;
  // Blocking sockets: a failed write must not leave the read waiting for bytes that never come.
  auto round_trip = [&]() -> const char* {
    size_t written = 0;
    while (written < n) {
      ssize_t w = write(fds[0], payload.data() + written, n - written);
      if (w <= 0) return "write failed";
      written += static_cast<size_t>(w);
    }
    while (buf.readable_bytes() < n) {
      if (buf.read_from(fds[1], extra.data(), extra.size()) <= 0) return "read_from failed";
    }
    return nullptr;
  };
  for (auto _ : state) {
    if (const char* error = round_trip()) {
      state.SkipWithError(error);
      break;
    }
    benchmark::DoNotOptimize(buf.peek());
    buf.consume(n);
  }
  set_bytes(state, n);
  close(fds[0]);
  close(fds[1]);
}
BENCHMARK(BM_ReadFrom)->Arg(64)->Arg(16 * 1024)->Arg(64 * 1024);

}  // namespace

BENCHMARK_MAIN();
