// The HTTP endpoint's route table: method + exact path -> handler. The API (api_routes.cc) and
// the dashboard's page and assets (dashboard_routes.cc) register here; an unknown path is 404,
// a known path with another method 405 (with Allow). HEAD is answered by a GET route.
// Thread safety: add() before the service starts; dispatch() from the HTTP loop only.
#pragma once

#include <functional>
#include <map>
#include <string>

#include "services/http/request_parser.h"
#include "services/http/response.h"

namespace keel::http {

class Router {
 public:
  using Handler = std::function<Response(const Request&)>;

  // Replaces a route already there (the dashboard's "/" replaces the placeholder page).
  void add(const std::string& method, const std::string& path, Handler handler);
  Response dispatch(const Request& request) const;
  bool has(const std::string& method, const std::string& path) const;

 private:
  std::map<std::string, std::map<std::string, Handler>> routes_;  // path -> method -> handler
};

// Registers "/" and the dashboard's assets. Defined in dashboard_routes.cc.
void add_dashboard_routes(Router& router);

}  // namespace keel::http
