#include "cli/serve_udp.h"

#include <spdlog/spdlog.h>

#include <string>

#include "keel/error.h"

namespace keel::cli {

DatagramListeners::~DatagramListeners() {
  for (auto& server : servers_) server->stop();
  if (pool_) pool_->stop();
}

void DatagramListeners::add(const char* service_name, DatagramService* service,
                            const Endpoint& endpoint) {
  if (!service)
    throw Error("listen " + endpoint.to_string() + ": " + service_name +
                " is a stream service; only echo serves udp: endpoints");
  for (auto& w : wanted_)
    if (w.service == service) {
      w.endpoints.push_back(endpoint);
      return;
    }
  wanted_.push_back({service, {endpoint}});
}

void DatagramListeners::start() {
  if (wanted_.empty() || pool_) return;
  pool_ = std::make_unique<LoopPool>(1);
  for (auto& w : wanted_) {
    UdpServerOptions options;
    options.listen = w.endpoints;
    servers_.push_back(std::make_unique<UdpServer>(*pool_, std::move(options), *w.service));
    servers_.back()->start();
  }
  pool_->start();
}

void DatagramListeners::log_listening() const {
  for (size_t i = 0; i < servers_.size(); ++i)
    for (const Endpoint& ep : servers_[i]->endpoints())
      spdlog::info("{} listening on {} (datagrams, a loop of their own)",
                   wanted_[i].service->name(), ep.to_string());
}

void DatagramListeners::stop() {
  for (size_t i = 0; i < servers_.size(); ++i) {
    servers_[i]->stop();
    UdpStats s = servers_[i]->stats();
    spdlog::info(
        "{} udp: {} datagrams in ({} bytes), {} out ({} bytes), {} truncated, {} dropped, {} "
        "errors",
        wanted_[i].service->name(), s.datagrams_in, s.bytes_in, s.datagrams_out, s.bytes_out,
        s.truncated, s.send_dropped, s.send_errors + s.receive_errors);
  }
  servers_.clear();
  if (pool_) pool_->stop();
}

}  // namespace keel::cli
