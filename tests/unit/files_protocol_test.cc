// The keel files codec (src/services/files/protocol.h): every request and reply through a
// round trip, frames fed whole and in pieces, malformed frames and payloads, the bounds of
// what append_* writes, and the path rules.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "services/files/protocol.h"

namespace keel::files {
namespace {

using namespace std::string_literals;

std::string encode(const Request& request) {
  std::string out;
  append_request(out, request);
  return out;
}

std::string encode(const Reply& reply) {
  std::string out;
  append_reply(out, reply);
  return out;
}

Digest digest_of(std::string_view text) {
  return Sha256::of(text);
}

std::vector<Request> sample_requests() {
  std::vector<Request> all;
  all.push_back({.type = Type::list, .path = "docs/a b"});
  all.push_back({.type = Type::list, .path = ""});
  all.push_back({.type = Type::stat, .path = "\xff\xfe/odd bytes"});
  all.push_back({.type = Type::get, .path = "big.iso", .offset = 1 << 20, .length = kToEnd});
  all.push_back({.type = Type::hash, .path = "x", .length = 0x0102030405060708});
  all.push_back({.type = Type::put, .path = "up/new", .size = 12345, .flags = kPutResume});
  all.push_back({.type = Type::put, .path = "p", .flags = kPutResume | kPutReplace});
  all.push_back({.type = Type::put_end, .digest = digest_of("the whole file")});
  all.push_back({.type = Type::get, .path = std::string(kMaxPathBytes, 'p')});
  return all;
}

std::vector<Reply> sample_replies() {
  std::vector<Reply> all;
  all.push_back({.type = Type::entry,
                 .kind = Kind::directory,
                 .size = 4096,
                 .mtime_ns = 1700000000123456789,
                 .name = "sub"});
  all.push_back({.type = Type::entry, .kind = Kind::other, .mtime_ns = -1, .name = ""});
  all.push_back({.type = Type::list_end, .count = 100000, .truncated = true});
  all.push_back({.type = Type::list_end});
  all.push_back(
      {.type = Type::stat_reply, .kind = Kind::file, .size = UINT64_MAX, .mtime_ns = INT64_MIN});
  all.push_back({.type = Type::data, .size = 10, .offset = 4, .length = 6});
  all.push_back({.type = Type::hash_reply, .length = 77, .digest = digest_of("abc")});
  all.push_back({.type = Type::put_ready, .offset = 0, .digest = digest_of("")});
  all.push_back({.type = Type::put_done, .size = 9, .digest = digest_of("123456789")});
  all.push_back({.type = Type::error, .code = ErrorCode::not_a_directory, .message = "no"});
  all.push_back({.type = Type::error, .code = ErrorCode::bad_request, .message = ""});
  return all;
}

void expect_same(const Request& a, const Request& b) {
  EXPECT_EQ(a.type, b.type);
  EXPECT_EQ(a.path, b.path);
  EXPECT_EQ(a.offset, b.offset);
  EXPECT_EQ(a.length, b.length);
  EXPECT_EQ(a.size, b.size);
  EXPECT_EQ(a.flags, b.flags);
  EXPECT_EQ(a.digest, b.digest);
}

void expect_same(const Reply& a, const Reply& b) {
  EXPECT_EQ(a.type, b.type);
  EXPECT_EQ(a.kind, b.kind);
  EXPECT_EQ(a.size, b.size);
  EXPECT_EQ(a.offset, b.offset);
  EXPECT_EQ(a.length, b.length);
  EXPECT_EQ(a.count, b.count);
  EXPECT_EQ(a.mtime_ns, b.mtime_ns);
  EXPECT_EQ(a.truncated, b.truncated);
  EXPECT_EQ(a.name, b.name);
  EXPECT_EQ(a.digest, b.digest);
  EXPECT_EQ(a.code, b.code);
  EXPECT_EQ(a.message, b.message);
}

// The frame at the start of bytes, which must be whole and well-formed.
Frame whole_frame(std::string_view bytes, size_t max_payload) {
  Frame frame;
  std::string why;
  EXPECT_EQ(peek_frame(bytes, max_payload, frame, why), Parse::ok) << why;
  return frame;
}

TEST(FilesProtocol, EveryRequestRoundTrips) {
  for (const Request& request : sample_requests()) {
    SCOPED_TRACE(to_string(request.type));
    std::string bytes = encode(request);
    Frame frame = whole_frame(bytes, kMaxRequestPayload);
    EXPECT_EQ(frame.type, request.type);
    EXPECT_EQ(frame.bytes, bytes.size());
    Request back;
    std::string why;
    ASSERT_TRUE(parse_request(frame, back, why)) << why;
    expect_same(back, request);
    EXPECT_EQ(encode(back), bytes);
  }
}

TEST(FilesProtocol, EveryReplyRoundTrips) {
  for (const Reply& reply : sample_replies()) {
    SCOPED_TRACE(to_string(reply.type));
    std::string bytes = encode(reply);
    Frame frame = whole_frame(bytes, kMaxReplyPayload);
    EXPECT_EQ(frame.type, reply.type);
    EXPECT_EQ(frame.bytes, bytes.size());
    Reply back;
    std::string why;
    ASSERT_TRUE(parse_reply(frame, back, why)) << why;
    expect_same(back, reply);
    EXPECT_EQ(encode(back), bytes);
  }
}

TEST(FilesProtocol, BytesAreTheSpecsBigEndianLayout) {
  EXPECT_EQ(encode(Request{.type = Type::get, .path = "a", .offset = 2, .length = kToEnd}),
            "\x03\0\0\0\x13"
            "\0\x01"
            "a"
            "\0\0\0\0\0\0\0\x02"
            "\xff\xff\xff\xff\xff\xff\xff\xff"s);
  EXPECT_EQ(encode(Request{.type = Type::put, .path = "", .size = 258, .flags = kPutReplace}),
            "\x05\0\0\0\x0b\0\0\0\0\0\0\0\0\x01\x02\x02"s);
  EXPECT_EQ(encode(Reply{
                .type = Type::entry, .kind = Kind::file, .size = 3, .mtime_ns = -2, .name = "f"}),
            "\x41\0\0\0\x14\x01\0\0\0\0\0\0\0\x03\xff\xff\xff\xff\xff\xff\xff\xfe\0\x01"
            "f"s);
  EXPECT_EQ(encode(Reply{.type = Type::error, .code = ErrorCode::range, .message = "past"}),
            "\x7f\0\0\0\x07\x07\0\x04past"s);
  EXPECT_EQ(encode(Request{.type = Type::put_end}).size(), kFrameHeaderBytes + 32);
}

// A stream of frames decoded as a server does, its bytes arriving in the given pieces: the
// frames found (re-encoded) and how it ended.
struct Decoded {
  std::vector<std::string> frames;
  Parse last = Parse::incomplete;
  std::string why;
  bool operator==(const Decoded&) const = default;
};

Decoded decode_pieces(std::string_view stream, const std::vector<size_t>& cuts) {
  Decoded out;
  std::string held;
  size_t from = 0;
  auto arrive = [&](size_t to) {
    held.append(stream.substr(from, to - from));
    from = to;
    for (;;) {
      Frame frame;
      out.last = peek_frame(held, kMaxRequestPayload, frame, out.why);
      if (out.last != Parse::ok) return out.last == Parse::incomplete;
      Request request;
      if (!parse_request(frame, request, out.why)) {
        out.last = Parse::malformed;
        return false;
      }
      out.frames.push_back(encode(request));
      held.erase(0, frame.bytes);
    }
  };
  for (size_t cut : cuts)
    if (!arrive(cut)) return out;
  arrive(stream.size());
  return out;
}

TEST(FilesProtocol, PiecewiseFeedingAgreesWithWholeAtEverySplitPoint) {
  std::string stream;
  for (const Request& request : sample_requests())
    if (request.path.size() < 100) stream += encode(request);
  stream += "\x01\0\0\x20\x01"s;  // a LIST over the limit: the stream ends malformed
  const Decoded whole = decode_pieces(stream, {});
  ASSERT_EQ(whole.last, Parse::malformed);
  ASSERT_EQ(whole.frames.size(), sample_requests().size() - 1);
  for (size_t i = 0; i < whole.frames.size(); ++i)
    EXPECT_NE(stream.find(whole.frames[i]), std::string::npos);
  for (size_t cut = 0; cut <= stream.size(); ++cut)
    ASSERT_EQ(decode_pieces(stream, {cut}), whole) << "cut at " << cut;
  std::vector<size_t> every_byte;
  for (size_t i = 1; i < stream.size(); ++i) every_byte.push_back(i);
  EXPECT_EQ(decode_pieces(stream, every_byte), whole);

  // Each prefix of one frame is incomplete, never anything else.
  std::string one = encode(sample_requests()[3]);
  for (size_t n = 0; n < one.size(); ++n) {
    Frame frame;
    std::string why;
    EXPECT_EQ(peek_frame(one.substr(0, n), kMaxRequestPayload, frame, why), Parse::incomplete);
  }
}

Parse peek(std::string_view bytes, size_t max_payload, std::string& why) {
  Frame frame;
  return peek_frame(bytes, max_payload, frame, why);
}

TEST(FilesProtocol, OversizeLengthIsMalformedFromTheHeaderAlone) {
  std::string why;
  EXPECT_EQ(peek("\x01\0\0\x20\x01"s, kMaxRequestPayload, why), Parse::malformed);
  EXPECT_EQ(why, "LIST frame of 8193 bytes is over the limit of 8192 bytes");
  EXPECT_EQ(peek("\x44\xff\xff\xff\xff"s, kMaxReplyPayload, why), Parse::malformed);
  EXPECT_EQ(peek("\x01\0\0\x20\x00"s, kMaxRequestPayload, why), Parse::incomplete);  // at max
  EXPECT_EQ(peek("\x44\0\x01\0\0"s, kMaxReplyPayload, why), Parse::incomplete);
  EXPECT_EQ(peek("\x44\0\x01\0\x01"s, kMaxReplyPayload, why), Parse::malformed);
}

TEST(FilesProtocol, UnknownTypeIsMalformedFromItsFirstByte) {
  for (uint8_t type : {0x00, 0x07, 0x40, 0x48, 0x7e, 0x80, 0xff}) {
    std::string why;
    EXPECT_EQ(peek(std::string(1, char(type)), kMaxRequestPayload, why), Parse::malformed);
    EXPECT_FALSE(why.empty());
  }
  std::string why;
  peek("\x08"s, kMaxRequestPayload, why);
  EXPECT_EQ(why, "unknown frame type 0x08");
}

bool request_of(std::string_view bytes, Request& request, std::string& why) {
  return parse_request(whole_frame(bytes, kMaxRequestPayload), request, why);
}

TEST(FilesProtocol, MalformedRequests) {
  Request request;
  std::string why;
  // A reply type sent by a client.
  std::string entry = encode(sample_replies()[0]);
  EXPECT_FALSE(request_of(entry, request, why));
  EXPECT_EQ(why, "ENTRY (0x41) is a reply, not a request");
  // Trailing bytes.
  EXPECT_FALSE(
      request_of("\x01\0\0\0\x04\0\x01"
                 "ax"s,
                 request, why));
  EXPECT_EQ(why, "LIST payload has 1 bytes after its last field");
  // Too short: an empty payload, a str longer than the payload, a GET without its length.
  EXPECT_FALSE(request_of("\x02\0\0\0\0"s, request, why));
  EXPECT_EQ(why, "STAT payload of 0 bytes is too short");
  EXPECT_FALSE(
      request_of("\x02\0\0\0\x03\0\x05"
                 "a"s,
                 request, why));
  EXPECT_FALSE(
      request_of("\x03\0\0\0\x0b\0\x01"
                 "a\0\0\0\0\0\0\0\0"s,
                 request, why));
  EXPECT_EQ(why, "GET payload of 11 bytes is too short");
  EXPECT_FALSE(request_of("\x06\0\0\0\x1f"s + std::string(31, 'h'), request, why));
  EXPECT_FALSE(request_of("\x06\0\0\0\x21"s + std::string(33, 'h'), request, why));
  // PUT flags: bits 0 and 1 only.
  for (uint8_t flags : {0x04, 0x80, 0x07}) {
    std::string put = encode(Request{.type = Type::put, .path = "p", .size = 1});
    put.back() = char(flags);
    EXPECT_FALSE(request_of(put, request, why));
  }
  EXPECT_EQ(why, "unknown PUT flag bits 0x04 (known: 1 resume, 2 replace)");
}

bool reply_of(std::string_view bytes, Reply& reply, std::string& why) {
  return parse_reply(whole_frame(bytes, kMaxReplyPayload), reply, why);
}

TEST(FilesProtocol, MalformedReplies) {
  Reply reply;
  std::string why;
  EXPECT_FALSE(reply_of(encode(sample_requests()[0]), reply, why));
  EXPECT_EQ(why, "LIST (0x01) is a request, not a reply");
  std::string stat = encode(Reply{.type = Type::stat_reply});
  for (char kind : {'\0', '\x04'}) {
    stat[kFrameHeaderBytes] = kind;
    EXPECT_FALSE(reply_of(stat, reply, why));
  }
  EXPECT_EQ(why, "unknown kind 4 in STAT_REPLY (known: 1 file, 2 directory, 3 other)");
  std::string list_end = encode(Reply{.type = Type::list_end});
  list_end.back() = '\x02';
  EXPECT_FALSE(reply_of(list_end, reply, why));
  for (char code : {'\0', '\x0c', '\xff'}) {
    EXPECT_FALSE(reply_of("\x7f\0\0\0\x03"s + code + "\0\0"s, reply, why));
  }
  EXPECT_EQ(why, "unknown error code 255 (known: 1 to 11)");
  EXPECT_FALSE(reply_of("\x44\0\0\0\x17"s + std::string(23, '\0'), reply, why));  // DATA, short
  EXPECT_FALSE(reply_of("\x47\0\0\0\x29"s + std::string(41, '\0'), reply, why));  // long
}

TEST(FilesProtocol, OverlongPathsAreSentStillTooLongNeverAsADifferentPath) {
  for (size_t size : {kMaxPathBytes + 1, size_t{5000}, size_t{70000}}) {
    std::string path = std::string(kMaxPathBytes - 1, 'a') + "/" + std::string(size, 'b');
    path.resize(size);
    std::string bytes = encode(Request{.type = Type::put, .path = path, .size = 1});
    Request back;
    std::string why;
    ASSERT_TRUE(request_of(bytes, back, why)) << why;
    EXPECT_LE(bytes.size() - kFrameHeaderBytes, kMaxRequestPayload);
    EXPECT_EQ(back.path, path.substr(0, kMaxPathBytes + 1));
    std::vector<std::string> components;
    Failure failure;
    EXPECT_FALSE(split_path(back.path, components, failure));
    EXPECT_EQ(failure.code, ErrorCode::not_allowed);
    EXPECT_EQ(failure.message, "path is 4097 bytes long, over the limit of 4096 bytes");
  }
}

TEST(FilesProtocol, LongTextIsCutToAFrameTheClientAccepts) {
  // "é" is two bytes: the cut must not leave half of one.
  std::string text;
  while (text.size() < 70000) text += "\xc3\xa9";
  for (Type type : {Type::error, Type::entry}) {
    SCOPED_TRACE(to_string(type));
    Reply reply{.type = type, .name = text, .code = ErrorCode::io, .message = text};
    std::string bytes = encode(reply);
    EXPECT_LE(bytes.size() - kFrameHeaderBytes, kMaxReplyPayload);
    Reply back;
    std::string why;
    ASSERT_TRUE(reply_of(bytes, back, why)) << why;
    const std::string& got = type == Type::error ? back.message : back.name;
    EXPECT_GT(got.size(), kMaxReplyPayload - 24);
    EXPECT_EQ(got.size() % 2, 0u);
    EXPECT_EQ(got, text.substr(0, got.size()));
  }
}

std::vector<std::string> split_ok(std::string_view path) {
  std::vector<std::string> components{"stale"};
  Failure failure;
  EXPECT_TRUE(split_path(path, components, failure)) << failure.message;
  return components;
}

std::string split_refused(std::string_view path) {
  std::vector<std::string> components{"stale"};
  Failure failure;
  EXPECT_FALSE(split_path(path, components, failure));
  EXPECT_EQ(failure.code, ErrorCode::not_allowed);
  EXPECT_TRUE(components.empty());
  return failure.message;
}

TEST(FilesPaths, EmptyAndDotComponentsAreIgnored) {
  using V = std::vector<std::string>;
  EXPECT_EQ(split_ok(""), V{});
  EXPECT_EQ(split_ok("."), V{});
  EXPECT_EQ(split_ok("./"), V{});
  EXPECT_EQ(split_ok("a//b/./c"), (V{"a", "b", "c"}));
  EXPECT_EQ(split_ok("a/b/"), (V{"a", "b"}));
  EXPECT_EQ(split_ok("..a/...b/c..\xff"), (V{"..a", "...b", "c..\xff"}));  // not ".."
  EXPECT_EQ(split_ok(std::string(kMaxPathBytes, 'x')), V{std::string(kMaxPathBytes, 'x')});
}

TEST(FilesPaths, TraversalAbsoluteNulAndLengthAreRefused) {
  EXPECT_EQ(split_refused("../x"), "path may not contain '..'");
  EXPECT_EQ(split_refused("a/../../x"), "path may not contain '..'");
  EXPECT_EQ(split_refused("a/.."), "path may not contain '..'");
  EXPECT_EQ(split_refused("a/../b"), "path may not contain '..'");  // even if it stays inside
  EXPECT_EQ(split_refused("/etc/passwd"),
            "absolute paths are not allowed: paths are relative to the served root");
  EXPECT_EQ(split_refused("/"),
            "absolute paths are not allowed: paths are relative to the served root");
  EXPECT_EQ(split_refused("a\0b"s), "path may not contain a NUL byte");
  EXPECT_EQ(split_refused(std::string(kMaxPathBytes + 1, 'x')),
            "path is 4097 bytes long, over the limit of 4096 bytes");
}

TEST(FilesPaths, UploadsInProgressAreReserved) {
  const std::string reserved =
      "names of the form .NAME.keel-part are reserved for uploads in progress";
  EXPECT_EQ(split_refused(".x.keel-part"), reserved);
  EXPECT_EQ(split_refused("dir/.x.keel-part/"), reserved);
  EXPECT_EQ(split_refused(".keel-part"), reserved);
  split_ok("x.keel-part");      // no leading dot
  split_ok(".x.keel-partial");  // another ending
  split_ok(".x.keel-part/y");   // only the final name is checked
  EXPECT_EQ(part_name("report.pdf"), ".report.pdf.keel-part");
  EXPECT_TRUE(is_reserved_name(part_name("report.pdf")));
  EXPECT_TRUE(is_reserved_name(part_name(".hidden")));
  EXPECT_FALSE(is_reserved_name("report.pdf"));
  EXPECT_FALSE(is_reserved_name(".keel-par"));
}

TEST(FilesProtocol, TypeNamesAndDirections) {
  EXPECT_STREQ(to_string(Type::put_ready), "PUT_READY");
  EXPECT_STREQ(to_string(static_cast<Type>(0x10)), "?");
  EXPECT_TRUE(is_request(Type::put_end));
  EXPECT_FALSE(is_request(Type::entry));
  EXPECT_TRUE(is_reply(Type::error));
  EXPECT_FALSE(is_reply(static_cast<Type>(0x48)));
}

}  // namespace
}  // namespace keel::files
