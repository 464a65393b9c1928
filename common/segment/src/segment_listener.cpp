#include "lanrelay/segment/segment_listener.hpp"

#include "lanrelay/base/log.hpp"
#include "lanrelay/segment/datagram.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/ip/multicast.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>

namespace lanrelay {

namespace net = boost::asio;
using udp = net::ip::udp;

segment_listener::segment_listener(executor strand, options o)
    : strand_(std::move(strand)), options_(std::move(o)), rescan_timer_(strand_) {}

bool segment_listener::open() {
  const auto bind = [&](std::optional<udp::socket>& socket, udp protocol, std::uint16_t port) {
    boost::system::error_code ec;
    socket.emplace(strand_);
    socket->open(protocol, ec);
    if (!ec && protocol == udp::v6()) {
      socket->set_option(net::ip::v6_only(true), ec);
    }
    if (!ec) {
      socket->bind(udp::endpoint(protocol, port), ec);
    }
    if (!ec) {
      ec = enable_arrival_interface(*socket);
    }
    if (!ec && options_.receive_buffer > 0) {
      // The kernel caps it at net.core.rmem_max; a smaller buffer is not an error.
      boost::system::error_code ignored;
      socket->set_option(net::socket_base::receive_buffer_size(options_.receive_buffer), ignored);
    }
    if (ec) {
      spdlog::log(protocol == udp::v4() ? spdlog::level::err : spdlog::level::warn,
                  "event={}_listen_error address={} port={} error=\"{}\" hint=\"{} queries go "
                  "unanswered\"",
                  options_.protocol, protocol == udp::v4() ? "0.0.0.0" : "::", port, ec.message(),
                  protocol == udp::v4() ? "IPv4" : "IPv6");
      socket.reset();
      return;
    }
    if (port_ == 0) {
      port_ = socket->local_endpoint().port();
    }
  };
  bind(v4_, udp::v4(), options_.port);
  if (options_.ipv6) {
    bind(v6_, udp::v6(), port_ != 0 ? port_ : options_.port);
  }
  return v4_ || v6_;
}

void segment_listener::start_rescans() {
  net::post(strand_, [this] { rescan(); });
  net::co_spawn(strand_, rescan_loop(), log_failure("interface rescan"));
}

void segment_listener::close() {
  closed_ = true;
  boost::system::error_code ignored;
  if (v4_) {
    v4_->close(ignored);
  }
  if (v6_) {
    v6_->close(ignored);
  }
  rescan_timer_.cancel();
}

void segment_listener::rescan() {
  interfaces_ = list_interfaces();
  if (!v6_) {
    return;
  }
  const auto group = net::ip::make_address_v6(options_.group);
  std::set<unsigned> present;
  for (const auto& nic : interfaces_) {
    if (!nic.multicast || nic.ipv6_link_local.empty()) {
      continue;
    }
    present.insert(nic.index);
    if (joined_.contains(nic.index)) {
      continue;
    }
    boost::system::error_code ec;
    v6_->set_option(net::ip::multicast::join_group(group, nic.index), ec);
    if (ec && ec != boost::system::errc::address_in_use) {
      spdlog::warn("event={}_join_error group={} interface={} error=\"{}\"", options_.protocol,
                   options_.group, nic.name, ec.message());
      continue;
    }
    joined_.insert(nic.index);
    spdlog::info("event={}_joined group={} interface={}", options_.protocol, options_.group,
                 nic.name);
  }
  std::erase_if(joined_, [&](unsigned index) { return !present.contains(index); });
}

net::awaitable<void> segment_listener::rescan_loop() {
  while (!closed_) {
    rescan_timer_.expires_after(options_.rescan_interval);
    auto [ec] = co_await rescan_timer_.async_wait(net::as_tuple(net::use_awaitable));
    if (ec || closed_) {
      co_return;
    }
    rescan();
  }
}

const network_interface* segment_listener::find_interface(unsigned index) {
  const auto match = [&](const network_interface& nic) { return nic.index == index; };
  auto it = std::find_if(interfaces_.begin(), interfaces_.end(), match);
  if (it == interfaces_.end() && index != 0) {
    rescan();  // an interface newer than our last scan
    it = std::find_if(interfaces_.begin(), interfaces_.end(), match);
  }
  return it == interfaces_.end() ? nullptr : &*it;
}

}  // namespace lanrelay
