#include "keel/net/endpoint.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/un.h>

#include <ostream>
#include <string>

#include "keel/error.h"

namespace keel {
namespace {

struct RoundTrip {
  const char* text;
  const char* canonical;
  int family;
  int port;
};

// Names the ctest cases after the text parsed (not the struct's bytes, which hold pointers).
void PrintTo(const RoundTrip& c, std::ostream* os) {
  *os << '"' << c.text << '"';
}

class EndpointRoundTrip : public ::testing::TestWithParam<RoundTrip> {};

TEST_P(EndpointRoundTrip, ParsesAndPrintsCanonicalForm) {
  const RoundTrip& c = GetParam();
  Endpoint ep = Endpoint::parse(c.text);
  EXPECT_EQ(ep.to_string(), c.canonical);
  EXPECT_EQ(ep.family(), c.family);
  EXPECT_EQ(ep.port(), c.port);
  EXPECT_EQ(ep.is_unix(), c.family == AF_UNIX);
  EXPECT_EQ(ep.is_ipv6(), c.family == AF_INET6);
  // parse(to_string()) gives back the same endpoint.
  Endpoint again = Endpoint::parse(ep.to_string());
  EXPECT_TRUE(again == ep) << again.to_string();
  EXPECT_EQ(again.to_string(), c.canonical);
}

INSTANTIATE_TEST_SUITE_P(
    Forms, EndpointRoundTrip,
    ::testing::Values(RoundTrip{"127.0.0.1:7000", "127.0.0.1:7000", AF_INET, 7000},
                      RoundTrip{"[::1]:7000", "[::1]:7000", AF_INET6, 7000},
                      RoundTrip{"localhost:7000", "127.0.0.1:7000", AF_INET, 7000},
                      RoundTrip{":7000", "0.0.0.0:7000", AF_INET, 7000},
                      RoundTrip{"unix:/tmp/x.sock", "unix:/tmp/x.sock", AF_UNIX, 0},
                      RoundTrip{"0.0.0.0:0", "0.0.0.0:0", AF_INET, 0},
                      RoundTrip{"10.1.2.3:65535", "10.1.2.3:65535", AF_INET, 65535},
                      RoundTrip{"[::]:80", "[::]:80", AF_INET6, 80},
                      RoundTrip{"[2001:db8:0::1]:443", "[2001:db8::1]:443", AF_INET6, 443}));

TEST(Endpoint, UnixPath) {
  Endpoint ep = Endpoint::parse("unix:/tmp/x.sock");
  EXPECT_EQ(ep.unix_path(), "/tmp/x.sock");
  EXPECT_EQ(Endpoint::parse("127.0.0.1:1").unix_path(), "");
}

TEST(Endpoint, LongestUnixPathFits) {
  std::string path = "/" + std::string(sizeof(sockaddr_un::sun_path) - 2, 'p');  // 107 bytes
  Endpoint ep = Endpoint::parse("unix:" + path);
  EXPECT_EQ(ep.unix_path(), path);
  EXPECT_TRUE(Endpoint::parse(ep.to_string()) == ep);
}

TEST(Endpoint, DifferentEndpointsAreNotEqual) {
  EXPECT_FALSE(Endpoint::parse("127.0.0.1:7000") == Endpoint::parse("127.0.0.1:7001"));
  EXPECT_FALSE(Endpoint::parse("127.0.0.1:7000") == Endpoint::parse("127.0.0.2:7000"));
  EXPECT_FALSE(Endpoint::parse("unix:/tmp/a") == Endpoint::parse("unix:/tmp/b"));
  EXPECT_TRUE(Endpoint::parse("localhost:7000") == Endpoint::parse("127.0.0.1:7000"));
}

TEST(Endpoint, FromSockaddr) {
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_port = htons(8080);
  ASSERT_EQ(::inet_pton(AF_INET, "192.0.2.7", &sin.sin_addr), 1);
  Endpoint ep = Endpoint::from_sockaddr(reinterpret_cast<sockaddr*>(&sin), sizeof sin);
  EXPECT_EQ(ep.to_string(), "192.0.2.7:8080");
  EXPECT_EQ(ep.port(), 8080);
  EXPECT_TRUE(ep == Endpoint::parse("192.0.2.7:8080"));

  sockaddr_in6 sin6{};
  sin6.sin6_family = AF_INET6;
  sin6.sin6_port = htons(9);
  sin6.sin6_addr = in6addr_loopback;
  Endpoint ep6 = Endpoint::from_sockaddr(reinterpret_cast<sockaddr*>(&sin6), sizeof sin6);
  EXPECT_EQ(ep6.to_string(), "[::1]:9");
}

TEST(Endpoint, DefaultIsNone) {
  Endpoint ep;
  EXPECT_EQ(ep.port(), 0);
  EXPECT_FALSE(ep.is_unix());
  EXPECT_EQ(ep.sockaddr_len(), 0u);
}

class EndpointRejects : public ::testing::TestWithParam<std::string> {};

TEST_P(EndpointRejects, WithErrorNamingTheInput) {
  const std::string& text = GetParam();
  try {
    Endpoint ep = Endpoint::parse(text);
    ADD_FAILURE() << "'" << text << "' parsed as " << ep.to_string();
  } catch (const Error& e) {
    std::string message = e.what();
    EXPECT_NE(message.find("'" + text + "'"), std::string::npos)
        << "message does not name the input: " << message;
    EXPECT_GT(message.size(), text.size() + 10) << "message does not say what is wrong";
  } catch (const std::exception& e) {
    ADD_FAILURE() << "'" << text << "' threw something other than keel::Error: " << e.what();
  }
}

INSTANTIATE_TEST_SUITE_P(
    BadText, EndpointRejects,
    ::testing::Values("", "7000", "1.2.3.4", "1.2.3.4:99999", "1.2.3.4:abc", "[::1]", "::1:80",
                      "unix:", "unix:/" + std::string(sizeof(sockaddr_un::sun_path), 'x'),
                      "bad host!:80", "1.2.3.4:", "1.2.3.4:-1", "1.2.3.4:65536", "1.2.3.4:80x",
                      "[::1]:", "[::1]80", "[::1:80", "[1.2.3.4]:80", "[]:80"));

}  // namespace
}  // namespace keel
