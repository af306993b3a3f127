// What a path names, as the keel files protocol reports it (docs/protocols.md, "keel files"):
// shared by the file system side (root.h) and the protocol codec.
#pragma once

#include <cstdint>

namespace keel::files {

// The wire values of ENTRY's and STAT_REPLY's kind byte.
enum class Kind : uint8_t {
  file = 1,
  directory = 2,
  other = 3,  // a device, socket or fifo, or a symlink the server does not follow
};

}  // namespace keel::files
