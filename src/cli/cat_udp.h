// keel cat for udp: endpoints (datagrams, not a stream): see cat_udp.cc for the line rules.
// Thread safety: the main thread only.
#pragma once

#include <cstddef>
#include <string>

#include "keel/net/endpoint.h"

namespace keel::cli {

// Shared by both halves of keel cat (defined in cat.cc): "keel cat: message" on stderr,
// returning code; and all of data to fd (stdout), false once it is closed.
int cat_fail(int code, const std::string& message);
bool write_all(int fd, const char* data, size_t n);

// Sends each stdin line as one datagram to ep and prints each reply followed by a newline;
// after stdin ends, waits until no reply has come for reply_timeout_s. Returns the exit code:
// 0 done, 1 refused or a line too long for a datagram, 4 idle timeout (idle_timeout_s > 0).
int run_cat_udp(const Endpoint& ep, double reply_timeout_s, double idle_timeout_s);

}  // namespace keel::cli
