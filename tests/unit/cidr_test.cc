#include "keel/net/cidr.h"

#include <gtest/gtest.h>

#include <string>

#include "keel/error.h"
#include "keel/net/proxy_stage.h"

namespace keel {
namespace {

bool contains(const char* cidr, const char* endpoint) {
  return Cidr::parse(cidr).contains(Endpoint::parse(endpoint));
}

std::string parse_error(const std::string& text) {
  try {
    Cidr c = Cidr::parse(text);
    return "parsed as " + c.to_string();
  } catch (const Error& e) {
    return e.what();
  }
}

TEST(Cidr, ParsesAndPrintsCanonicalForm) {
  EXPECT_EQ(Cidr::parse("10.0.0.0/8").to_string(), "10.0.0.0/8");
  EXPECT_EQ(Cidr::parse("127.0.0.1").to_string(), "127.0.0.1/32");
  EXPECT_EQ(Cidr::parse("0.0.0.0/0").to_string(), "0.0.0.0/0");
  EXPECT_EQ(Cidr::parse("::1").to_string(), "::1/128");
  EXPECT_EQ(Cidr::parse("2001:DB8:0::/32").to_string(), "2001:db8::/32");
  EXPECT_EQ(Cidr::parse("::/0").to_string(), "::/0");
  EXPECT_TRUE(Cidr::parse("::1/128").is_ipv6());
  EXPECT_EQ(Cidr::parse("192.168.0.0/23").prefix_bits(), 23);
  // An IPv4-mapped IPv6 prefix is the IPv4 prefix it maps.
  Cidr mapped = Cidr::parse("::ffff:10.0.0.0/104");
  EXPECT_FALSE(mapped.is_ipv6());
  EXPECT_EQ(mapped.to_string(), "10.0.0.0/8");
  for (const char* text : {"10.0.0.0/8", "192.168.0.0/23", "::1/128", "2001:db8::/32"})
    EXPECT_EQ(Cidr::parse(Cidr::parse(text).to_string()).to_string(), text);
}

TEST(Cidr, MatchesAddressesInThePrefixOnly) {
  EXPECT_TRUE(contains("10.0.0.0/8", "10.1.2.3:5"));
  EXPECT_TRUE(contains("10.0.0.0/8", "10.255.255.255:0"));
  EXPECT_FALSE(contains("10.0.0.0/8", "11.0.0.1:5"));
  EXPECT_FALSE(contains("10.0.0.0/8", "9.255.255.255:5"));
  EXPECT_TRUE(contains("127.0.0.1/32", "127.0.0.1:4000"));
  EXPECT_FALSE(contains("127.0.0.1/32", "127.0.0.2:4000"));
  EXPECT_TRUE(contains("192.168.0.0/23", "192.168.1.255:1"));
  EXPECT_FALSE(contains("192.168.0.0/23", "192.168.2.0:1"));
  EXPECT_TRUE(contains("0.0.0.0/0", "203.0.113.7:1"));
  EXPECT_TRUE(contains("::1/128", "[::1]:5"));
  EXPECT_FALSE(contains("::1/128", "[::2]:5"));
  EXPECT_TRUE(contains("2001:db8::/32", "[2001:db8:1::1]:5"));
  EXPECT_FALSE(contains("2001:db8::/32", "[2001:db9::1]:5"));
  EXPECT_TRUE(contains("fe80::/10", "[febf::1]:5"));
  EXPECT_FALSE(contains("fe80::/10", "[fec0::1]:5"));
  EXPECT_TRUE(contains("::/0", "[2001:db8::1]:5"));
}

TEST(Cidr, FamiliesDoNotMixExceptIpv4MappedPeers) {
  EXPECT_FALSE(contains("::1/128", "127.0.0.1:5"));
  EXPECT_FALSE(contains("127.0.0.1/32", "[::1]:5"));
  EXPECT_FALSE(contains("::/0", "127.0.0.1:5"));
  // A dual-stack listener reports IPv4 clients as ::ffff:a.b.c.d: they match IPv4 prefixes.
  EXPECT_TRUE(contains("10.0.0.0/8", "[::ffff:10.1.2.3]:5"));
  EXPECT_TRUE(contains("127.0.0.1", "[::ffff:127.0.0.1]:5"));
  EXPECT_FALSE(contains("10.0.0.0/8", "[::ffff:11.1.2.3]:5"));
  EXPECT_TRUE(contains("::ffff:10.0.0.0/104", "10.9.9.9:5"));
  // Unix peers have no address to match.
  EXPECT_FALSE(Cidr::parse("0.0.0.0/0").contains(Endpoint::parse("unix:/tmp/x.sock")));
  EXPECT_FALSE(Cidr::parse("::/0").contains(Endpoint{}));
}

TEST(Cidr, RefusesBadTextWithAClearMessage) {
  EXPECT_EQ(parse_error("10.1.0.0/8"),
            "CIDR '10.1.0.0/8': address has bits set past the prefix (did you mean 10.0.0.0/8?)");
  EXPECT_EQ(parse_error("192.168.1.0/23"),
            "CIDR '192.168.1.0/23': address has bits set past the prefix (did you mean "
            "192.168.0.0/23?)");
  EXPECT_EQ(parse_error("10.0.0.0/33"),
            "CIDR '10.0.0.0/33': prefix length must be a number from 0 to 32");
  EXPECT_EQ(parse_error("::1/129"), "CIDR '::1/129': prefix length must be a number from 0 to 128");
  // Found by tests/fuzz/cidr_fuzz: "-0" was read as 0, so this was ::/0.
  EXPECT_EQ(parse_error("::/-0"), "CIDR '::/-0': prefix length must be a number from 0 to 128");
  EXPECT_EQ(parse_error("0.0.0.0/-0"),
            "CIDR '0.0.0.0/-0': prefix length must be a number from 0 to 32");
  EXPECT_EQ(parse_error("example.com/8"),
            "CIDR 'example.com/8': 'example.com' is not an IPv4 or IPv6 address");
  for (const char* text :
       {"", "/8", "10.0.0.0/", "10.0.0.0/x", "10.0.0.0/8x", "10.0.0.0/-1", "10.0.0.0/+8", "1.2.3/8",
        "010.0.0.0/8", "10.0.0.0 /8", "10.0.0.0//8", "[::1]/128", "::1%lo/128", "10.0.0.0/ 8"})
    EXPECT_EQ(parse_error(text).rfind("CIDR '", 0), 0u) << text << ": " << parse_error(text);
}

TEST(Cidr, RefusesANulByteThatWouldHideTheRestOfTheText) {
  // Found by tests/fuzz/cidr_fuzz: inet_pton stopped at the NUL, so these parsed as fe80::/10
  // and 10.0.0.0/32. The message shows the NUL (a raw one would end the message there).
  using namespace std::string_literals;
  EXPECT_EQ(parse_error("fe80::\0\0/10"s), "CIDR 'fe80::\\0\\0/10': NUL byte in the address");
  EXPECT_EQ(parse_error("10.0.0.0\0junk"s), "CIDR '10.0.0.0\\0junk': NUL byte in the address");
}

TEST(ProxyPolicy, EmptyAllowsAnyoneAListAllowsItsPrefixesAndUnixPeers) {
  ProxyPolicy any;
  EXPECT_TRUE(any.allows(Endpoint::parse("203.0.113.7:1")));
  ProxyPolicy some{{Cidr::parse("10.0.0.0/8"), Cidr::parse("::1/128")}};
  EXPECT_TRUE(some.allows(Endpoint::parse("10.0.0.1:1")));
  EXPECT_TRUE(some.allows(Endpoint::parse("[::1]:1")));
  EXPECT_TRUE(some.allows(Endpoint::parse("[::ffff:10.0.0.1]:1")));
  EXPECT_FALSE(some.allows(Endpoint::parse("127.0.0.1:1")));
  EXPECT_TRUE(some.allows(Endpoint::parse("unix:/tmp/lb.sock")));
}

}  // namespace
}  // namespace keel
