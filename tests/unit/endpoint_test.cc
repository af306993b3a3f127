#include "keel/net/endpoint.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/un.h>

#include <ostream>
#include <string>

#include "keel/error.h"
#include "keel/net/socket.h"

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

TEST_P(EndpointRoundTrip, IsAStreamEndpoint) {
  Endpoint ep = Endpoint::parse(GetParam().text);
  EXPECT_FALSE(ep.is_udp());
  EXPECT_EQ(ep.transport(), Endpoint::Transport::stream);
}

class EndpointUdpRoundTrip : public ::testing::TestWithParam<RoundTrip> {};

TEST_P(EndpointUdpRoundTrip, ParsesAndPrintsCanonicalForm) {
  const RoundTrip& c = GetParam();
  Endpoint ep = Endpoint::parse(c.text);
  EXPECT_TRUE(ep.is_udp());
  EXPECT_EQ(ep.transport(), Endpoint::Transport::datagram);
  EXPECT_EQ(ep.to_string(), c.canonical);
  EXPECT_EQ(ep.family(), c.family);
  EXPECT_EQ(ep.port(), c.port);
  EXPECT_FALSE(ep.is_unix());
  EXPECT_EQ(ep.is_ipv6(), c.family == AF_INET6);
  Endpoint again = Endpoint::parse(ep.to_string());
  EXPECT_TRUE(again == ep) << again.to_string();
  EXPECT_TRUE(again.is_udp());
}

INSTANTIATE_TEST_SUITE_P(
    Forms, EndpointUdpRoundTrip,
    ::testing::Values(RoundTrip{"udp:127.0.0.1:9000", "udp:127.0.0.1:9000", AF_INET, 9000},
                      RoundTrip{"udp:[::1]:9000", "udp:[::1]:9000", AF_INET6, 9000},
                      RoundTrip{"udp:localhost:53", "udp:127.0.0.1:53", AF_INET, 53},
                      RoundTrip{"udp::9000", "udp:0.0.0.0:9000", AF_INET, 9000},
                      RoundTrip{"udp:127.0.0.1:0", "udp:127.0.0.1:0", AF_INET, 0},
                      RoundTrip{"udp:[::]:65535", "udp:[::]:65535", AF_INET6, 65535},
                      RoundTrip{"udp:[2001:db8:0::1]:53", "udp:[2001:db8::1]:53", AF_INET6, 53}));

TEST(Endpoint, UdpAndTcpOnTheSameAddressDiffer) {
  Endpoint udp = Endpoint::parse("udp:127.0.0.1:7000");
  Endpoint tcp = Endpoint::parse("127.0.0.1:7000");
  EXPECT_FALSE(udp == tcp);
  EXPECT_EQ(udp.port(), tcp.port());
  EXPECT_EQ(udp.sockaddr_len(), tcp.sockaddr_len());
  EXPECT_TRUE(udp == Endpoint::parse("udp:localhost:7000"));
}

TEST(Endpoint, FromSockaddrAsDatagram) {
  sockaddr_in6 sin6{};
  sin6.sin6_family = AF_INET6;
  sin6.sin6_port = htons(5353);
  sin6.sin6_addr = in6addr_loopback;
  Endpoint ep = Endpoint::from_sockaddr(reinterpret_cast<sockaddr*>(&sin6), sizeof sin6,
                                        Endpoint::Transport::datagram);
  EXPECT_TRUE(ep.is_udp());
  EXPECT_EQ(ep.to_string(), "udp:[::1]:5353");
  EXPECT_TRUE(ep == Endpoint::parse("udp:[::1]:5353"));
}

TEST(Endpoint, UdpErrorsSayWhatAUdpEndpointLooksLike) {
  for (const char* text : {"udp:", "udp:9000", "udp:1.2.3.4:70000", "udp:[::1]"}) {
    try {
      Endpoint::parse(text);
      ADD_FAILURE() << text << " parsed";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("(expected udp:HOST:PORT"), std::string::npos)
          << e.what();
    }
  }
  try {
    Endpoint::parse("udp:unix:/tmp/x.sock");
    ADD_FAILURE() << "udp:unix: parsed";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("UDP needs an IP address"), std::string::npos) << e.what();
  }
}

TEST(Endpoint, StreamSocketsRefuseUdpEndpoints) {
  Endpoint udp = Endpoint::parse("udp:127.0.0.1:0");
  try {
    Socket::listen_on(udp, SocketOptions{});
    ADD_FAILURE() << "listened on a udp: endpoint";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              "listen udp:127.0.0.1:0: a UDP endpoint carries datagrams, not a stream (serve it "
              "with keel::UdpServer)");
  }
  EXPECT_THROW(Socket::stream_for(udp), Error);
  EXPECT_THROW(Socket::datagram_for(Endpoint::parse("127.0.0.1:0")), Error);
}

TEST(Endpoint, RefusesANulByteThatWouldHideTheRestOfTheHost) {
  // Found by tests/fuzz/endpoint_fuzz: inet_pton stopped at the NUL, so these parsed as
  // 127.0.0.1:80 and [::1]:80.
  using namespace std::string_literals;
  for (const std::string& text : {"127.0.0.1\0junk:80"s, "[::1\0junk]:80"s, "udp:127.0.0.1\0:9"s}) {
    try {
      Endpoint ep = Endpoint::parse(text);
      ADD_FAILURE() << "parsed as " << ep.to_string();
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("\\0"), std::string::npos) << e.what();  // shown
      EXPECT_NE(std::string(e.what()).find("NUL byte in the host"), std::string::npos) << e.what();
    }
  }
}

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
  EXPECT_FALSE(ep.is_udp());
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
                      "[::1]:", "[::1]80", "[::1:80", "[1.2.3.4]:80", "[]:80", "udp:", "udp:7000",
                      "udp:1.2.3.4", "udp:1.2.3.4:65536", "udp:[::1]", "udp:::1:80",
                      "udp:unix:/tmp/x", "udp:bad host!:80", "udp:[::1]80", "udp :1.2.3.4:80",
                      "UDP:1.2.3.4:80",
                      // A port is digits: "-0" and "+1" were read as 0 and 1.
                      "1.2.3.4:-0", "1.2.3.4:+1", "udp:[::1]:-0", "1.2.3.4: 80"));

}  // namespace
}  // namespace keel
