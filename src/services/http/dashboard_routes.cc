// Placeholder for the dashboard: "/" is a minimal page until the dashboard's embedded assets
// (generated from src/services/http/assets/) register here instead.
#include "services/http/router.h"

namespace keel::http {

void add_dashboard_routes(Router& router) {
  router.add("GET", "/", [](const Request&) {
    Response r;
    r.content_type = "text/html; charset=utf-8";
    r.body =
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>keel</title></head><body>"
        "<h1>keel</h1><ul><li><a href=\"/metrics\">/metrics</a></li>"
        "<li><a href=\"/api/stats\">/api/stats</a></li>"
        "<li><a href=\"/api/clients\">/api/clients</a></li>"
        "<li><a href=\"/healthz\">/healthz</a></li><li><a href=\"/readyz\">/readyz</a></li>"
        "</ul></body></html>\n";
    return r;
  });
}

}  // namespace keel::http
