// What the hub's e2e tests share: the bytes a client pushes past --max-held-bytes, and what an
// attach session (`keel ctl attach` as a subprocess) must print of them.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <thread>

#include "e2e/subprocess.h"
#include "test_util.h"

namespace keel::test {

// "line 0\n", "line 1\n", ... up to at least `bytes`.
inline std::string numbered_lines(size_t bytes) {
  std::string out;
  for (int i = 0; out.size() < bytes; ++i) out += "line " + std::to_string(i) + "\n";
  return out;
}

// The session prints `text` somewhere in its output, within the default wait.
inline bool shows(Subprocess& session, const std::string& text) {
  return eventually([&] { return session.out().find(text) != std::string::npos; });
}

// The session prints exactly `pushed` (which `writer` writes to the client) within 30 s; then
// `~.` detaches and the session ends with status 0.
inline void expect_all_then_detach(Subprocess& session, const std::string& pushed,
                                   std::thread& writer) {
  EXPECT_TRUE(
      eventually([&] { return session.out().size() >= pushed.size(); }, std::chrono::seconds(30)))
      << session.out().size();
  writer.join();
  EXPECT_TRUE(session.out() == pushed) << "what attach printed differs from what was sent";
  session.write_stdin("~.\n");
  EXPECT_EQ(session.wait(), 0) << session.err();
}

}  // namespace keel::test
