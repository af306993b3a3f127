// Haproxy: Debian's haproxy run by a test in the foreground (-db), on a frontend port of its
// own. HAProxy cannot bind port 0 and say what it got, so start() takes a port that was free a
// moment ago and tries again with another if HAProxy exits (the bind failed) or never serves.
#pragma once

#include <unistd.h>

#include <fstream>
#include <functional>
#include <memory>
#include <string>

#include "e2e/subprocess.h"
#include "test_util.h"

namespace keel::test {

class Haproxy {
 public:
  static std::string binary() {
    for (const char* path : {"/usr/sbin/haproxy", "/usr/bin/haproxy", "/usr/local/sbin/haproxy"})
      if (::access(path, X_OK) == 0) return path;
    return {};
  }

  // config(port): the whole configuration for a frontend on 127.0.0.1:port; ready(frontend):
  // true once a request through it is served. False when no attempt came up.
  bool start(const std::string& dir, const std::function<std::string(int port)>& config,
             const std::function<bool(const Endpoint&)>& ready) {
    const std::string path = binary();
    if (path.empty()) return false;
    for (int attempt = 0; attempt < 5; ++attempt) {
      port_ = closed_loopback_port();
      if (port_ <= 0) return false;
      const std::string file = dir + "/haproxy.cfg";
      std::ofstream(file) << config(port_);
      process_ = std::make_unique<Subprocess>(std::vector<std::string>{path, "-f", file, "-db"});
      bool up = eventually(
          [&] {
            if (process_->wait(std::chrono::milliseconds(0))) return true;  // exited
            return ready(frontend());
          },
          std::chrono::seconds(10));
      if (up && !process_->wait(std::chrono::milliseconds(0))) return true;
      process_.reset();
    }
    return false;
  }

  Endpoint frontend() const { return Endpoint::parse("127.0.0.1:" + std::to_string(port_)); }
  Subprocess& process() { return *process_; }

 private:
  int port_ = 0;
  std::unique_ptr<Subprocess> process_;
};

}  // namespace keel::test
