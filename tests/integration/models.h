// The concurrency models the engine-parameterised suites run under (echo, chat, backpressure).
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

#include "keel/engine/factory.h"
#include "proc_util.h"
#include "test_util.h"

namespace keel::test {

// The models the engine suites run under: every one, and those that serve connections inside the
// test process (so the test can look at the service's state).
inline std::vector<Model> all_models() {
  return {Model::reactor, Model::threads, Model::processes};
}
inline std::vector<Model> in_process_models() {
  return {Model::reactor, Model::threads};
}

// "reactor", "threads", ...: readable ctest names for parameterised suites.
inline std::string model_name(const ::testing::TestParamInfo<Model>& info) {
  return to_string(info.param);
}

// Whether this process may start an engine of this model now. The processes model's start()
// forks its spawner, and a fork while another thread is inside AddressSanitizer's allocator (GCC
// 12 and clang 14 do not lock it around fork) leaves that size class's lock held forever in the
// spawner and in every child it forks: the child hangs in its first allocation of that size and
// its client waits. So a fixture starts the engine before its loop threads, and this waits for
// threads of earlier work in the process to be gone. Loop threads started just before the fork
// were still allocating: under CPU contention children hung in `new TcpConnection`.
inline ::testing::AssertionResult ready_to_start(Model model) {
  if (model != Model::processes) return ::testing::AssertionSuccess();
    // ThreadSanitizer's runtime keeps a background thread of its own (and forks safely).
#if defined(__SANITIZE_THREAD__)
  constexpr size_t kMost = 2;
#else
  constexpr size_t kMost = 1;
#endif
  if (eventually([] { return threads_in_this_process() <= kMost; }, std::chrono::seconds(5)))
    return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << threads_in_this_process() << " threads when the spawner would be forked, want "
         << kMost;
}

}  // namespace keel::test
