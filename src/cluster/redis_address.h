// RedisAddress: where a node's Redis is, from the --redis flag.
//   redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]   TCP (port 6379 by default); HOST is an address
//                                                or a name
//   unix:PATH[?db=DB][&user=USER][&password=PASSWORD]   a Unix socket
// With a password the link sends AUTH before anything else. The password is never printed:
// to_string() and every error show it as ***.
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
  std::string user;      // empty: the default user (AUTH PASSWORD)
  std::string password;  // empty: no AUTH

  // Throws keel::Error with what is wrong: "--redis: ...".
  static RedisAddress parse(std::string_view url);
  // As an operator reads it (redis://127.0.0.1:6379/0, unix:/run/redis.sock?db=0), with any
  // password as ***.
  std::string to_string() const;
};

}  // namespace keel::cluster
