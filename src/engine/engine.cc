// Engine's default traffic(): the live connections' counters, from visit().
#include "keel/engine/engine.h"

namespace keel {

EngineTraffic Engine::traffic() {
  EngineTraffic t;
  visit([&t](const ClientSnapshot& c) {
    t.bytes_in += c.bytes_in;
    t.bytes_out += c.bytes_out;
    t.queued_bytes += c.queued_bytes;
  });
  return t;
}

}  // namespace keel
