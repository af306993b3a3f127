// TLS helpers for tests: a throw-away certificate made with the openssl command at test time
// (no key is ever committed), and a blocking TLS client built on keel's own client stream.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <stdlib.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include "keel/net/stream.h"
#include "keel/net/tls.h"
#include "test_util.h"

namespace keel::test {

// A self-signed certificate for localhost / 127.0.0.1 / ::1 in a temporary directory, removed
// with the object.
class TestCertificate {
 public:
  TestCertificate() {
    char dir_template[] = "/tmp/keel-tls-XXXXXX";
    const char* made = ::mkdtemp(dir_template);
    if (!made) return;
    dir_ = made;
    cert_ = dir_ + "/test-only-cert.pem";
    key_ = dir_ + "/test-only-key.pem";
    std::string cmd =
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
        " -days 2 -subj /CN=localhost"
        " -addext subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1"
        " -keyout " +
        key_ + " -out " + cert_ + " 2>/dev/null";
    ok_ = std::system(cmd.c_str()) == 0;
  }
  ~TestCertificate() {
    std::error_code ignored;
    if (!dir_.empty()) std::filesystem::remove_all(dir_, ignored);
  }
  TestCertificate(const TestCertificate&) = delete;
  TestCertificate& operator=(const TestCertificate&) = delete;

  bool ok() const { return ok_; }
  const std::string& cert() const { return cert_; }
  const std::string& key() const { return key_; }
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_, cert_, key_;
  bool ok_ = false;
};

// One TLS client connection, used from one thread. Every call is bounded by its timeout.
class TlsTestClient {
 public:
  // Connects and runs the handshake; ok() says whether both worked, error() why not. preface:
  // bytes sent in the clear before the handshake (a PROXY protocol header).
  TlsTestClient(const Endpoint& server, const std::string& ca_file,
                std::chrono::milliseconds timeout = std::chrono::seconds(10),
                std::string_view preface = {}) {
    fd_ = connect_to(server);
    if (!fd_.valid()) {
      error_ = "connect failed";
      return;
    }
    if (!preface.empty() && !test::write_all(fd_.get(), preface, timeout)) {
      error_ = "sending the preface failed";
      return;
    }
    ::fcntl(fd_.get(), F_SETFL, ::fcntl(fd_.get(), F_GETFL) | O_NONBLOCK);
    TlsClientOptions o;
    o.ca_file = ca_file;
    o.server_name = "localhost";
    stream_ = TlsContext::client(o)->make_stream();
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      Stream::Step step = stream_->open(fd_.get(), server);
      if (step == Stream::Step::done) break;
      if (step == Stream::Step::failed) {
        error_ = stream_->error_detail();
        return;
      }
      if (!wait_until(step == Stream::Step::want_read ? POLLIN : POLLOUT, deadline)) {
        error_ = "handshake timed out";
        return;
      }
    }
    ok_ = true;
  }

  bool ok() const { return ok_; }
  const std::string& error() const { return error_; }
  int fd() const { return fd_.get(); }
  std::string transport() const { return stream_ ? stream_->describe() : std::string(); }

  // Writes all of data; false on error or timeout.
  bool write_all(std::string_view data, std::chrono::milliseconds timeout = 10s) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!data.empty()) {
      ssize_t n = stream_->write(fd_.get(), data.data(), data.size());
      if (n > 0) {
        data.remove_prefix(static_cast<size_t>(n));
        continue;
      }
      if (errno != EAGAIN || !wait_until(POLLOUT, deadline)) return false;
    }
    return true;
  }

  // Writes as much of data as the connection takes without waiting; returns how much.
  size_t write_some(std::string_view data) {
    size_t done = 0;
    while (done < data.size()) {
      ssize_t n = stream_->write(fd_.get(), data.data() + done, data.size() - done);
      if (n <= 0) break;
      done += static_cast<size_t>(n);
    }
    return done;
  }

  // Reads up to n bytes (what is there, waiting at most timeout for the first); "" at the end
  // of the stream or on error (then end() says which).
  std::string read_some(size_t n, std::chrono::milliseconds timeout = 10s) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    std::string buf(n, '\0');
    for (;;) {
      ssize_t got = stream_->read(fd_.get(), buf.data(), n);
      if (got > 0) {
        buf.resize(static_cast<size_t>(got));
        return buf;
      }
      if (got == 0) {
        end_ = StreamEnd::eof;
        return {};
      }
      if (errno != EAGAIN) {
        end_ = errno == ECONNRESET ? StreamEnd::reset : StreamEnd::error;
        return {};
      }
      if (!wait_until(POLLIN, deadline)) {
        end_ = StreamEnd::timeout;
        return {};
      }
    }
  }

  std::string read_exactly(size_t n, std::chrono::milliseconds timeout = 10s) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    std::string out;
    while (out.size() < n) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) break;
      std::string chunk = read_some(std::min<size_t>(n - out.size(), 64 * 1024), left);
      if (chunk.empty()) break;
      out += chunk;
    }
    return out;
  }

  // Reads until the peer ends the stream; appends to *out. How it ended.
  StreamEnd read_until_end(std::string* out, std::chrono::milliseconds timeout = 10s) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return StreamEnd::timeout;
      std::string chunk = read_some(64 * 1024, left);
      if (chunk.empty()) return end_;
      if (out) *out += chunk;
    }
  }

  // close_notify, then FIN: our half of the stream is done.
  void shutdown_write() { stream_->shutdown_write(fd_.get()); }

 private:
  bool wait_until(short events, std::chrono::steady_clock::time_point deadline) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    return left.count() > 0 && wait_ready(fd_.get(), events, left);
  }

  Fd fd_;
  std::unique_ptr<Stream> stream_;
  std::string error_;
  StreamEnd end_ = StreamEnd::error;
  bool ok_ = false;
};

}  // namespace keel::test
