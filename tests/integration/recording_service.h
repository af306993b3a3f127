// A test service: echo (with either overflow policy) that records which connections opened and
// closed, and why, so tests can name a connection by id from outside its engine.
#pragma once

#include <mutex>
#include <optional>
#include <vector>

#include "keel/service.h"

namespace keel::test {

// Echo (optionally with the disconnect overflow policy) that records opens and closes.
class RecordingService : public Service {
 public:
  struct Closed {
    ConnectionId id;
    CloseReason reason;
  };

  explicit RecordingService(Overflow overflow = Overflow::pause_reading) : overflow_(overflow) {}
  const char* name() const noexcept override { return "recording"; }
  Overflow overflow() const noexcept override { return overflow_; }
  void on_open(Server&, const ConnectionInfo& info) override {
    std::lock_guard lock(mutex_);
    opened_.push_back(info.id);
  }
  void on_data(Server& server, ConnectionId id, Buffer& in) override {
    server.send(id, in.view());
    in.consume_all();
  }
  void on_close(Server&, ConnectionId id, const CloseReason& reason) override {
    std::lock_guard lock(mutex_);
    closed_.push_back({id, reason});
  }

  std::vector<ConnectionId> opened() const {
    std::lock_guard lock(mutex_);
    return opened_;
  }
  std::vector<Closed> closed() const {
    std::lock_guard lock(mutex_);
    return closed_;
  }
  std::optional<CloseReason> close_reason(ConnectionId id) const {
    std::lock_guard lock(mutex_);
    for (const Closed& c : closed_)
      if (c.id == id) return c.reason;
    return std::nullopt;
  }

 private:
  const Overflow overflow_;
  mutable std::mutex mutex_;
  std::vector<ConnectionId> opened_;
  std::vector<Closed> closed_;
};

}  // namespace keel::test
