// PerAddressLimit: what counts as one client address (IPv4, IPv6 by its full address, an
// IPv4-mapped IPv6 address as its IPv4 one, never the port, never a Unix peer) and that a
// released slot can be taken again.
#include "keel/net/admission.h"

#include <gtest/gtest.h>

namespace keel {
namespace {

TEST(PerAddressLimit, CountsByAddressNotPort) {
  PerAddressLimit limit(2);
  EXPECT_TRUE(limit.try_acquire(Endpoint::parse("127.0.0.1:1000")));
  EXPECT_TRUE(limit.try_acquire(Endpoint::parse("127.0.0.1:1001")));
  EXPECT_FALSE(limit.try_acquire(Endpoint::parse("127.0.0.1:1002")));
  EXPECT_EQ(limit.count(Endpoint::parse("127.0.0.1:9")), 2u);
  EXPECT_TRUE(limit.try_acquire(Endpoint::parse("127.0.0.2:1000"))) << "another address";
  limit.release(Endpoint::parse("127.0.0.1:1000"));
  EXPECT_TRUE(limit.try_acquire(Endpoint::parse("127.0.0.1:1003"))) << "a slot was freed";
  EXPECT_FALSE(limit.try_acquire(Endpoint::parse("127.0.0.1:1004")));
}

TEST(PerAddressLimit, Ipv6CountsByTheFullAddress) {
  PerAddressLimit limit(1);
  EXPECT_TRUE(limit.try_acquire(Endpoint::parse("[2001:db8::1]:1")));
  EXPECT_FALSE(limit.try_acquire(Endpoint::parse("[2001:db8::1]:2")));
  // Same /64, different address: a client of its own.
  EXPECT_TRUE(limit.try_acquire(Endpoint::parse("[2001:db8::2]:1")));
  EXPECT_TRUE(limit.try_acquire(Endpoint::parse("[::1]:1")));
}

TEST(PerAddressLimit, MappedIpv4IsTheIpv4Address) {
  PerAddressLimit limit(1);
  EXPECT_TRUE(limit.try_acquire(Endpoint::parse("192.0.2.7:1")));
  EXPECT_FALSE(limit.try_acquire(Endpoint::parse("[::ffff:192.0.2.7]:2")));
  limit.release(Endpoint::parse("[::ffff:192.0.2.7]:2"));
  EXPECT_EQ(limit.count(Endpoint::parse("192.0.2.7:1")), 0u);
}

TEST(PerAddressLimit, UnixPeersAreNotLimited) {
  PerAddressLimit limit(1);
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(limit.try_acquire(Endpoint::parse("unix:/tmp/x")));
}

TEST(Refusal, NamesTheFlag) {
  EXPECT_STREQ(to_string(Refusal::max_connections), "over --max-connections");
  EXPECT_STREQ(to_string(Refusal::per_address), "over --max-connections-per-ip");
}

}  // namespace
}  // namespace keel
