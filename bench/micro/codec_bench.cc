// Micro benchmarks of the chat codecs (services/chat/framing.h): decoding a buffer full of
// lines or length frames, encoding, and sanitizing relayed text. Reports bytes/s.
//   build/release/bench/keel_micro_bench --benchmark_filter=Chat
#include <benchmark/benchmark.h>

#include <string>

#include "services/chat/framing.h"

namespace {

using keel::chat::Framing;

// A 64 KiB read's worth of messages of state.range(0) bytes, decoded one by one.
void decode_batch(benchmark::State& state, Framing framing) {
  const size_t n = static_cast<size_t>(state.range(0));
  std::string one = keel::chat::encode(framing, std::string(n, 'm'));
  std::string batch;
  while (batch.size() + one.size() <= 64 * 1024) batch += one;
  keel::Buffer in;
  std::string out;
  for (auto _ : state) {
    in.append(batch);
    while (keel::chat::decode(framing, in, 4096, out) == keel::chat::DecodeStatus::message)
      benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * batch.size()));
}

void BM_ChatDecodeLines(benchmark::State& state) {
  decode_batch(state, Framing::lines);
}
void BM_ChatDecodeFrames(benchmark::State& state) {
  decode_batch(state, Framing::length);
}
BENCHMARK(BM_ChatDecodeLines)->Arg(32)->Arg(1024);
BENCHMARK(BM_ChatDecodeFrames)->Arg(32)->Arg(1024);

void BM_ChatEncode(benchmark::State& state) {
  std::string text(static_cast<size_t>(state.range(0)), 't');
  for (auto _ : state) benchmark::DoNotOptimize(keel::chat::encode(Framing::lines, text));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text.size()));
}
BENCHMARK(BM_ChatEncode)->Arg(32)->Arg(1024);

void BM_ChatSanitize(benchmark::State& state) {
  std::string text(static_cast<size_t>(state.range(0)), 's');
  for (auto _ : state) benchmark::DoNotOptimize(keel::chat::sanitize(text));
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * text.size()));
}
BENCHMARK(BM_ChatSanitize)->Arg(32)->Arg(1024);

}  // namespace
