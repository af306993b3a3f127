// RedisAddress: where a node's Redis is, from the --redis flag.
//   redis://HOST[:PORT][/DB]   TCP (port 6379 by default); HOST is an address or a name
//   unix:PATH[?db=DB]          a Unix socket (the tests' redis-server, a sidecar's socket)
// A host name is resolved once, here, at start-up: hiredis would otherwise call getaddrinfo
// (which blocks) on the event loop at every reconnect.
// Thread safety: a value type.
#pragma once

#include <string>
#include <string_view>

namespace keel::cluster {

struct RedisAddress {
  std::string host;  // numeric address; empty for a Unix socket
  int port = 6379;
  std::string unix_path;  // set for a Unix socket
  int db = 0;

  // Throws keel::Error with what is wrong: "--redis: ...".
  static RedisAddress parse(std::string_view url);
  // As an operator reads it (redis://127.0.0.1:6379/0, unix:/run/redis.sock?db=0).
  std::string to_string() const;
};

}  // namespace keel::cluster
