// The events between cluster nodes: what is encoded decodes to the same event, and every
// malformed or truncated entry is refused with a reason (entries come from the network).
#include "cluster/node_event.h"

#include <gtest/gtest.h>

#include "cluster/redis_address.h"
#include "keel/error.h"

namespace keel::cluster {
namespace {

NodeEvent sample() {
  return NodeEvent{EventKind::room_line, 1234567890123ull, "node-a", {"#lobby", "<bob> hi\n", ""}};
}

TEST(NodeEvent, RoundTrips) {
  for (const NodeEvent& e :
       {sample(), NodeEvent{EventKind::hello, 1, "n", {}},
        NodeEvent{EventKind::roster,
                  7,
                  std::string(kMaxNodeNameBytes, 'x'),
                  {"1", "alice", "#a", "2", "bob", ""}},
        NodeEvent{EventKind::private_line, ~0ull, "b", {std::string("\0\xff", 2), "x", "y"}},
        NodeEvent{EventKind::op_session,
                  9,
                  "h2",
                  {"4", "h1", "event", "data", std::string("\r\n\0", 3), "3"}}}) {
    std::string why;
    auto back = decode_event(encode(e), &why);
    ASSERT_TRUE(back) << why;
    EXPECT_EQ(back->kind, e.kind);
    EXPECT_EQ(back->seq, e.seq);
    EXPECT_EQ(back->node, e.node);
    EXPECT_EQ(back->args, e.args);
  }
}

TEST(NodeEvent, EveryTruncationIsRefused) {
  std::string bytes = encode(sample());
  for (size_t n = 0; n < bytes.size(); ++n) {
    std::string why;
    EXPECT_FALSE(decode_event(std::string_view(bytes).substr(0, n), &why)) << n;
    EXPECT_FALSE(why.empty()) << n;
  }
}

TEST(NodeEvent, MalformedEntriesAreRefusedWithAReason) {
  std::string good = encode(sample());
  auto refused = [](std::string bytes, std::string_view reason) {
    std::string why;
    EXPECT_FALSE(decode_event(bytes, &why));
    EXPECT_NE(why.find(reason), std::string::npos) << why;
  };
  refused("hello", "not a keel event");
  refused("K2" + good.substr(2), "not a keel event");
  std::string kind = good;
  kind[2] = 0;
  refused(kind, "unknown event kind");
  kind[2] = 99;
  refused(kind, "unknown event kind");
  kind[2] = kLastEventKind + 1;
  refused(kind, "unknown event kind");
  std::string no_node = good;
  no_node[11] = 0;
  refused(no_node, "bad node name length");
  refused(good + "x", "bytes after the last argument");
  // A count of arguments the bytes cannot hold is refused before anything is allocated.
  std::string many = "K1";
  many += '\x07';
  many += std::string(8, '\0');
  many += '\x01';
  many += 'n';
  many += "\xff\xff\xff\xff";
  refused(many, "too many arguments");
  many[many.size() - 4] = 0;  // 0x00ffffff: under the limit, over the bytes
  many[many.size() - 3] = 0;
  refused(many, "more arguments than bytes");
  // An argument longer than what follows.
  std::string long_arg = encode(NodeEvent{EventKind::room_line, 1, "n", {"abc"}});
  long_arg[long_arg.size() - 4] = 9;
  refused(long_arg, "truncated argument");
}

TEST(RedisAddress, ParsesWhatAnOperatorWrites) {
  RedisAddress a = RedisAddress::parse("redis://127.0.0.1:6380/2");
  EXPECT_EQ(a.host, "127.0.0.1");
  EXPECT_EQ(a.port, 6380);
  EXPECT_EQ(a.db, 2);
  EXPECT_EQ(a.to_string(), "redis://127.0.0.1:6380/2");
  a = RedisAddress::parse("redis://localhost");
  EXPECT_TRUE(a.host == "127.0.0.1" || a.host == "::1") << a.host;
  EXPECT_EQ(a.port, 6379);
  EXPECT_EQ(a.db, 0);
  a = RedisAddress::parse("redis://[::1]:7000");
  EXPECT_EQ(a.host, "::1");
  EXPECT_EQ(a.port, 7000);
  EXPECT_EQ(a.to_string(), "redis://[::1]:7000/0");
  a = RedisAddress::parse("unix:/run/redis/redis.sock?db=3");
  EXPECT_EQ(a.unix_path, "/run/redis/redis.sock");
  EXPECT_EQ(a.db, 3);
  // Passwords: used, never shown.
  a = RedisAddress::parse("redis://:p@ss:word@127.0.0.1:7000/1");
  EXPECT_EQ(a.user, "");
  EXPECT_EQ(a.password, "p@ss:word");
  EXPECT_EQ(a.to_string(), "redis://:***@127.0.0.1:7000/1");
  a = RedisAddress::parse("redis://app:secret@127.0.0.1");
  EXPECT_EQ(a.user, "app");
  EXPECT_EQ(a.password, "secret");
  EXPECT_EQ(a.to_string(), "redis://app:***@127.0.0.1:6379/0");
  a = RedisAddress::parse("unix:/s?password=secret&db=2&user=app");
  EXPECT_EQ(a.password, "secret");
  EXPECT_EQ(a.user, "app");
  EXPECT_EQ(a.db, 2);
  EXPECT_EQ(a.to_string(), "unix:/s?db=2&user=app&password=***");
}

TEST(RedisAddress, RefusesWhatIsWrongAndSaysWhat) {
  auto refused = [](const std::string& url, std::string_view reason) {
    try {
      RedisAddress::parse(url);
      ADD_FAILURE() << url << " was accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(reason), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("--redis"), std::string::npos) << e.what();
    }
  };
  refused("http://x", "unknown scheme");
  refused("redis://", "no host");
  refused("redis://127.0.0.1:0", "port 0");
  refused("redis://127.0.0.1:70000", "bad port");
  refused("redis://127.0.0.1:6379/16", "bad database");
  refused("redis://[::1", "unclosed");
  refused("unix:", "no socket path");
  refused("unix:/s?color=red", "unknown parameter 'color'");
  refused("redis://justaname@127.0.0.1", "after a ':'");
  // A refusal never shows the password.
  try {
    RedisAddress::parse("redis://:hunter2@127.0.0.1:99999");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()).find("hunter2"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(":***@"), std::string::npos) << e.what();
  }
  try {
    RedisAddress::parse("unix:/s?password=hunter2&db=99");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()).find("hunter2"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace keel::cluster
