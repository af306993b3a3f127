#include "services/http/router.h"

namespace keel::http {

void Router::add(const std::string& method, const std::string& path, Handler handler) {
  routes_[path][method] = std::move(handler);
}

bool Router::has(const std::string& method, const std::string& path) const {
  auto it = routes_.find(path);
  return it != routes_.end() && it->second.count(method) != 0;
}

Response Router::dispatch(const Request& request) const {
  auto it = routes_.find(request.path);
  if (it == routes_.end()) return text_response(404, "no such page: " + request.path.substr(0, 64));
  const std::string& method = request.method == "HEAD" ? std::string("GET") : request.method;
  auto handler = it->second.find(method);
  if (handler == it->second.end()) {
    std::string allow;
    for (const auto& [m, h] : it->second) allow += (allow.empty() ? "" : ", ") + m;
    if (it->second.count("GET")) allow += ", HEAD";
    Response r = text_response(405, request.method + " is not allowed here (" + allow + ")");
    r.headers.emplace_back("Allow", allow);
    return r;
  }
  return handler->second(request);
}

}  // namespace keel::http
