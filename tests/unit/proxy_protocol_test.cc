#include "keel/net/proxy_protocol.h"

#include <gtest/gtest.h>

#include <ostream>
#include <string>

#include "proxy_headers.h"

namespace keel {
namespace {

using test::proxy_tlv;
using test::proxy_v2;
using test::proxy_v2_local;
using test::proxy_v2_tcp4;
using test::proxy_v2_tcp6;
using test::proxy_v2_unix;
using Status = ProxyParse::Status;

std::string status_name(Status s) {
  return s == Status::done ? "done" : s == Status::error ? "error" : "need_more";
}

// Feeds bytes one more byte at a time, as a socket might deliver them: every prefix before the
// answer needs more, and the first answer is the one the whole input gets at once.
void expect_incremental_agrees(const std::string& bytes) {
  ProxyParse whole = parse_proxy_header(bytes);
  for (size_t n = 0; n <= bytes.size(); ++n) {
    ProxyParse part = parse_proxy_header(std::string_view(bytes).substr(0, n));
    if (part.status == Status::need_more) continue;
    EXPECT_EQ(status_name(part.status), status_name(whole.status)) << "after " << n << " bytes";
    EXPECT_EQ(part.error, whole.error) << "after " << n << " bytes";
    EXPECT_EQ(part.header.length, whole.header.length);
    if (part.status == Status::done) {
      EXPECT_EQ(n, part.header.length) << "decided late";
    }
    return;
  }
  EXPECT_EQ(status_name(whole.status), "need_more");
}

ProxyHeader parse_done(const std::string& bytes) {
  ProxyParse p = parse_proxy_header(bytes);
  EXPECT_EQ(status_name(p.status), "done") << p.error;
  expect_incremental_agrees(bytes);
  return p.header;
}

std::string source_of(const ProxyHeader& h) {
  return h.source ? h.source->to_string() : "none";
}
std::string destination_of(const ProxyHeader& h) {
  return h.destination ? h.destination->to_string() : "none";
}

// ---- v1 -----------------------------------------------------------------------------------

TEST(ProxyV1, Tcp4GivesAddressesAndStopsAtCrlf) {
  std::string line = "PROXY TCP4 203.0.113.7 192.0.2.1 4242 7000\r\n";
  ProxyHeader h = parse_done(line + "hello");
  EXPECT_EQ(h.version, 1);
  EXPECT_EQ(h.command, ProxyHeader::Command::proxy);
  EXPECT_EQ(h.family, ProxyHeader::Family::tcp4);
  EXPECT_EQ(h.length, line.size());
  EXPECT_EQ(source_of(h), "203.0.113.7:4242");
  EXPECT_EQ(destination_of(h), "192.0.2.1:7000");
}

TEST(ProxyV1, Tcp6GivesAddresses) {
  std::string line = "PROXY TCP6 2001:db8::7 2001:DB8:0:0:0:0:0:1 4242 443\r\n";
  ProxyHeader h = parse_done(line);
  EXPECT_EQ(h.family, ProxyHeader::Family::tcp6);
  EXPECT_EQ(h.length, line.size());
  EXPECT_EQ(source_of(h), "[2001:db8::7]:4242");
  EXPECT_EQ(destination_of(h), "[2001:db8::1]:443");
}

TEST(ProxyV1, LongestTcp6LineAndPortExtremes) {
  std::string full = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
  std::string line = "PROXY TCP6 " + full + " " + full + " 65535 0\r\n";
  EXPECT_EQ(line.size(), 100u);
  ProxyHeader h = parse_done(line);
  EXPECT_EQ(h.source->port(), 65535);
  EXPECT_EQ(h.destination->port(), 0);
}

TEST(ProxyV1, UnknownKeepsTheSocketPeer) {
  ProxyHeader h = parse_done("PROXY UNKNOWN\r\nrest");
  EXPECT_EQ(h.family, ProxyHeader::Family::unknown);
  EXPECT_EQ(h.length, 15u);
  EXPECT_FALSE(h.source);
  // The worst case the spec allows: exactly 107 bytes, whatever follows UNKNOWN is ignored.
  std::string full = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
  std::string longest = "PROXY UNKNOWN " + full + " " + full + " 65535 65535\r\n";
  ASSERT_EQ(longest.size(), kProxyV1MaxBytes);
  h = parse_done(longest);
  EXPECT_EQ(h.length, kProxyV1MaxBytes);
  EXPECT_FALSE(h.source);
}

struct Bad {
  const char* name;
  std::string bytes;
  const char* error;  // a part of the reason
};

void PrintTo(const Bad& b, std::ostream* os) {
  *os << b.name;
}
std::string bad_name(const ::testing::TestParamInfo<Bad>& info) {
  return info.param.name;
}

class ProxyMalformed : public ::testing::TestWithParam<Bad> {};

TEST_P(ProxyMalformed, IsAnErrorWithAReason) {
  const Bad& b = GetParam();
  ProxyParse p = parse_proxy_header(b.bytes);
  ASSERT_EQ(status_name(p.status), "error");
  EXPECT_NE(p.error.find(b.error), std::string::npos) << p.error;
  expect_incremental_agrees(b.bytes);
}

const std::string kFull = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";

INSTANTIATE_TEST_SUITE_P(
    V1, ProxyMalformed,
    ::testing::Values(
        Bad{"http", "GET / HTTP/1.1\r\n\r\n", "not a PROXY protocol header"},
        Bad{"tls", "\x16\x03\x01\x02\x00\x01", "not a PROXY protocol header"},
        Bad{"lowercase", "proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n", "not a PROXY protocol header"},
        Bad{"no_space", "PROXYTCP4 1.2.3.4 5.6.7.8 1 2\r\n", "not a PROXY protocol header"},
        Bad{"protocol", "PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n", "is not TCP4, TCP6 or UNKNOWN"},
        Bad{"empty", "PROXY \r\n", "is not TCP4, TCP6 or UNKNOWN"},
        Bad{"unknown_suffix", "PROXY UNKNOWNX\r\n", "is not TCP4, TCP6 or UNKNOWN"},
        Bad{"few_fields", "PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", "needs 4 fields"},
        Bad{"many_fields", "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n", "too many fields"},
        Bad{"trailing_space", "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n", "too many fields"},
        Bad{"double_space", "PROXY TCP4 1.2.3.4  5.6.7.8 1\r\n", "exactly one space"},
        Bad{"ipv4_leading_zero", "PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n", "bad address"},
        Bad{"ipv4_over_255", "PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n", "bad address"},
        Bad{"ipv4_three_parts", "PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n", "bad address"},
        Bad{"ipv4_five_parts", "PROXY TCP4 1.2.3.4.5 5.6.7.8 1 2\r\n", "bad address"},
        Bad{"ipv4_empty_part", "PROXY TCP4 1..3.4 5.6.7.8 1 2\r\n", "bad address"},
        Bad{"tcp4_with_ipv6", "PROXY TCP4 ::1 ::1 1 2\r\n", "bad address"},
        Bad{"tcp6_with_ipv4", "PROXY TCP6 1.2.3.4 ::1 1 2\r\n", "bad address"},
        Bad{"tcp6_garbage", "PROXY TCP6 ::g ::1 1 2\r\n", "bad address"},
        Bad{"port_over", "PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n", "bad port"},
        Bad{"port_leading_zero", "PROXY TCP4 1.2.3.4 5.6.7.8 080 2\r\n", "bad port"},
        Bad{"port_sign", "PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n", "bad port"},
        Bad{"port_long", "PROXY TCP4 1.2.3.4 5.6.7.8 1 000007\r\n", "bad port"},
        Bad{"lf_only", "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", "LF without CR"},
        Bad{"cr_only", "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX", "CR not followed by LF"},
        Bad{"nul", std::string("PROXY TCP4 1.2.3.4\0 5.6.7.8 1 2\r\n", 33), "not printable"},
        Bad{"no_crlf_in_107", "PROXY UNKNOWN " + std::string(93, 'f'), "over 107 bytes"},
        Bad{"line_of_108", "PROXY UNKNOWN " + kFull + " " + kFull + " 65535 655350\r\n",
            "over 107 bytes"}),
    bad_name);

// ---- v2 -----------------------------------------------------------------------------------

TEST(ProxyV2, Tcp4GivesAddressesAndStopsAtTheLength) {
  std::string header = proxy_v2_tcp4("203.0.113.7", 4242, "192.0.2.1", 7000);
  ASSERT_EQ(header.size(), 28u);
  ProxyHeader h = parse_done(header + "hello");
  EXPECT_EQ(h.version, 2);
  EXPECT_EQ(h.command, ProxyHeader::Command::proxy);
  EXPECT_EQ(h.family, ProxyHeader::Family::tcp4);
  EXPECT_EQ(h.length, 28u);
  EXPECT_EQ(source_of(h), "203.0.113.7:4242");
  EXPECT_EQ(destination_of(h), "192.0.2.1:7000");
}

TEST(ProxyV2, Tcp6GivesAddresses) {
  std::string header = proxy_v2_tcp6("2001:db8::7", 4242, "2001:db8::1", 443);
  ProxyHeader h = parse_done(header);
  EXPECT_EQ(h.family, ProxyHeader::Family::tcp6);
  EXPECT_EQ(h.length, 52u);
  EXPECT_EQ(source_of(h), "[2001:db8::7]:4242");
  EXPECT_EQ(destination_of(h), "[2001:db8::1]:443");
}

TEST(ProxyV2, UnixGivesPathsAndAnUnnamedClientKeepsTheSocketPeer) {
  ProxyHeader h = parse_done(proxy_v2_unix("/run/client.sock", "/run/haproxy.sock"));
  EXPECT_EQ(h.family, ProxyHeader::Family::unix_stream);
  EXPECT_EQ(h.length, 16u + 216u);
  EXPECT_EQ(source_of(h), "unix:/run/client.sock");
  EXPECT_EQ(destination_of(h), "unix:/run/haproxy.sock");

  h = parse_done(proxy_v2_unix("", "/run/haproxy.sock"));
  EXPECT_EQ(h.family, ProxyHeader::Family::unix_stream);
  EXPECT_FALSE(h.source);  // the usual case: clients of a Unix socket have no name

  std::string longest(108, 'p');  // a path filling its field, without a NUL
  longest[0] = '/';
  h = parse_done(proxy_v2_unix(longest, ""));
  EXPECT_EQ(h.source->unix_path(), longest);
  EXPECT_FALSE(h.destination);
}

TEST(ProxyV2, LocalKeepsTheSocketPeerWhateverTheBlockSays) {
  ProxyHeader h = parse_done(proxy_v2_local());
  EXPECT_EQ(h.command, ProxyHeader::Command::local);
  EXPECT_EQ(h.length, 16u);
  EXPECT_FALSE(h.source);

  // LOCAL with a family and addresses anyway: they are skipped, not used.
  std::string with_block = proxy_v2_tcp4("203.0.113.7", 1, "192.0.2.1", 2);
  with_block[12] = 0x20;
  h = parse_done(with_block);
  EXPECT_EQ(h.command, ProxyHeader::Command::local);
  EXPECT_EQ(h.length, 28u);
  EXPECT_FALSE(h.source);

  // LOCAL with a family but a block too short for it is still fine: the family is ignored.
  h = parse_done(proxy_v2(0, 0x11, "abc"));
  EXPECT_EQ(h.length, 19u);
}

TEST(ProxyV2, TlvsAreSkipped) {
  std::string tlvs = proxy_tlv(0x01, "h2") + proxy_tlv(0x02, "example.com") + proxy_tlv(0x04, "") +
                     proxy_tlv(0x05, std::string(128, 'u')) +
                     proxy_tlv(0x20, std::string("\x01\0\0\0\0", 5) + proxy_tlv(0x21, "TLSv1.3"));
  std::string header = proxy_v2_tcp4("203.0.113.7", 4242, "192.0.2.1", 7000, tlvs);
  ProxyHeader h = parse_done(header + "data");
  EXPECT_EQ(h.length, header.size());
  EXPECT_EQ(source_of(h), "203.0.113.7:4242");

  h = parse_done(proxy_v2_tcp6("::1", 1, "::1", 2, proxy_tlv(0xe0, "custom")));
  EXPECT_EQ(h.length, 52u + 9u);
}

TEST(ProxyV2, UnusableTransportsFallBackToTheSocketPeer) {
  // PROXY with UNSPEC family: no address to use.
  ProxyHeader h = parse_done(proxy_v2(1, 0x00, "ignored bytes"));
  EXPECT_EQ(h.family, ProxyHeader::Family::unknown);
  EXPECT_FALSE(h.source);
  // UDP over IPv4 (DGRAM): a datagram flow cannot stand in for a stream peer.
  std::string udp = proxy_v2_tcp4("203.0.113.7", 1, "192.0.2.1", 2);
  udp[13] = 0x12;
  h = parse_done(udp);
  EXPECT_EQ(h.family, ProxyHeader::Family::unknown);
  EXPECT_FALSE(h.source);
  // INET with UNSPEC transport: the addresses are to be ignored.
  std::string unspec = proxy_v2_tcp4("203.0.113.7", 1, "192.0.2.1", 2);
  unspec[13] = 0x10;
  h = parse_done(unspec);
  EXPECT_FALSE(h.source);
}

TEST(ProxyV2, HeaderOfExactlyTheLimitIsAccepted) {
  std::string base = proxy_v2_tcp4("203.0.113.7", 1, "192.0.2.1", 2);
  std::string pad = proxy_tlv(0x04, std::string(kProxyV2MaxBytes - base.size() - 3, 'x'));
  std::string header = proxy_v2_tcp4("203.0.113.7", 1, "192.0.2.1", 2, pad);
  ASSERT_EQ(header.size(), kProxyV2MaxBytes);
  EXPECT_EQ(parse_done(header).length, kProxyV2MaxBytes);
}

std::string with_byte(std::string s, size_t i, char c) {
  s[i] = c;
  return s;
}

const std::string kTcp4 = proxy_v2_tcp4("203.0.113.7", 4242, "192.0.2.1", 7000);

INSTANTIATE_TEST_SUITE_P(
    V2, ProxyMalformed,
    ::testing::Values(
        Bad{"signature", with_byte(kTcp4, 7, 'q'), "not a PROXY protocol header"},
        Bad{"signature_nul", with_byte(kTcp4, 4, 'x'), "not a PROXY protocol header"},
        Bad{"version_1", with_byte(kTcp4, 12, 0x11), "v2 version 1 is not 2"},
        Bad{"version_3", with_byte(kTcp4, 12, 0x31), "v2 version 3 is not 2"},
        Bad{"command_2", with_byte(kTcp4, 12, 0x22), "neither LOCAL nor PROXY"},
        Bad{"family_4", with_byte(kTcp4, 13, 0x41), "unsupported family 4"},
        Bad{"family_f", with_byte(kTcp4, 13, '\xf1'), "unsupported family 15"},
        Bad{"transport_3", with_byte(kTcp4, 13, 0x13), "unsupported transport 3"},
        Bad{"length_over_limit", proxy_v2(1, 0x11, std::string(kProxyV2MaxBytes - 15, 'x')),
            "v2 length 4081 over limit"},
        Bad{"length_max", with_byte(with_byte(kTcp4, 14, '\xff'), 15, '\xff'),
            "v2 length 65535 over limit"},
        Bad{"tcp4_short", proxy_v2(1, 0x11, std::string(11, 'x')), "too short"},
        Bad{"tcp6_short", proxy_v2(1, 0x21, std::string(35, 'x')), "too short"},
        Bad{"unix_short", proxy_v2(1, 0x31, std::string(215, 'x')), "too short"},
        Bad{"udp4_short", proxy_v2(1, 0x12, std::string(11, 'x')), "too short"},
        Bad{"tlv_truncated",
            proxy_v2_tcp4("203.0.113.7", 1, "192.0.2.1", 2, std::string("\x01\x00", 2)),
            "TLV truncated"},
        Bad{"tlv_overrun",
            proxy_v2_tcp4("203.0.113.7", 1, "192.0.2.1", 2,
                          std::string("\x01\x00\x05"
                                      "ab",
                                      5)),
            "TLV runs past the header"}),
    bad_name);

TEST(ProxyHeaderParse, PrefixesNeedMore) {
  for (std::string prefix : {std::string(), std::string("P"), std::string("PROXY"),
                             std::string("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r"), kTcp4.substr(0, 1),
                             kTcp4.substr(0, 12), kTcp4.substr(0, 15), kTcp4.substr(0, 27)}) {
    EXPECT_EQ(status_name(parse_proxy_header(prefix).status), "need_more") << prefix.size();
  }
}

TEST(ProxyHeaderParse, FormattedNames) {
  EXPECT_STREQ(to_string(ProxyHeader::Family::tcp4), "TCP4");
  EXPECT_STREQ(to_string(ProxyHeader::Family::tcp6), "TCP6");
  EXPECT_STREQ(to_string(ProxyHeader::Family::unix_stream), "UNIX");
  EXPECT_STREQ(to_string(ProxyHeader::Family::unknown), "UNKNOWN");
  EXPECT_STREQ(to_string(ProxyHeader::Command::local), "LOCAL");
  EXPECT_STREQ(to_string(ProxyHeader::Command::proxy), "PROXY");
}

}  // namespace
}  // namespace keel
