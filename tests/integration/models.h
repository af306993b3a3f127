// The concurrency models the engine-parameterised suites run under (echo, chat, backpressure).
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "keel/engine/factory.h"

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

}  // namespace keel::test
