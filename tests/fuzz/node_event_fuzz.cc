// libFuzzer: decode_event (the events other cluster nodes write to the Redis stream) on
// arbitrary bytes. Checks: what it accepts re-encodes to exactly the same bytes (the encoding
// is canonical, so nothing in an entry is skipped or read twice), within the limits (node name,
// argument count); what it refuses comes with a reason.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "cluster/node_event.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  std::string why;
  auto event = keel::cluster::decode_event(bytes, &why);
  if (!event) {
    if (why.empty()) std::abort();
    return 0;
  }
  if (event->node.empty() || event->node.size() > keel::cluster::kMaxNodeNameBytes) std::abort();
  if (event->args.size() > keel::cluster::kMaxEventArgs) std::abort();
  if (keel::cluster::encode(*event) != bytes) std::abort();
  return 0;
}
