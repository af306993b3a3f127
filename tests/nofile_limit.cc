// Linked into every test program: raises the soft open-file limit to the hard one before any
// test runs. Several tests hold hundreds or thousands of descriptors (300 TLS clients under the
// threads model take about 900: a socket and an eventfd per connection, plus the clients), and a
// stock machine's soft limit is 1,024. Subprocesses the tests start inherit the raised limit.
#include <sys/resource.h>

namespace {

const bool kRaised = [] {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur >= limit.rlim_max) return false;
  limit.rlim_cur = limit.rlim_max;
  return ::setrlimit(RLIMIT_NOFILE, &limit) == 0;
}();

}  // namespace
