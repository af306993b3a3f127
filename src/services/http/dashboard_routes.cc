// The dashboard: "/" and the files it loads, embedded in the binary (assets.h). The page loads
// only these files from this origin, which its Content-Security-Policy says, so even a mistake in
// the page could not run script or load anything from elsewhere.
#include "services/http/assets.h"
#include "services/http/router.h"

namespace keel::http {
namespace {

constexpr const char* kContentSecurityPolicy =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

}  // namespace

void add_dashboard_routes(Router& router) {
  for (const Asset& asset : assets()) {
    router.add("GET", std::string(asset.path), [&asset](const Request&) {
      Response r;
      r.content_type = std::string(asset.content_type);
      r.body = std::string(asset.body);
      r.headers.emplace_back("Content-Security-Policy", kContentSecurityPolicy);
      r.headers.emplace_back("Referrer-Policy", "no-referrer");
      return r;
    });
  }
}

}  // namespace keel::http
