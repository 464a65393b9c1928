#pragma once

// proxyhelperd's HTTP side (4130/tcp): /proxy.pac and /wpad.dat (the generated PAC script, or a
// redirect to the site's own pac_url), /-/healthz, /-/stats, and with monitoring sources
// (monitor.hpp) /-/metrics, /-/status and the status page at /.
//
// handle_request is the socket-free seam; pac_server accepts connections and runs one coroutine
// per connection (keep-alive, a deadline on every request head), refusing connections beyond
// max_connections and backing off when accept fails (EMFILE).
//
// Threads: each connection runs on its own strand; the acceptor on the server's strand. The
// handler only reads proxy_health (thread safe) and relaxed atomic counters.

#include "lanrelay/common/error.hpp"
#include "lanrelay/proxyhelper/config.hpp"
#include "lanrelay/proxyhelper/health.hpp"
#include "lanrelay/proxyhelper/monitor.hpp"
#include "lanrelay/proxyhelper/stats.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include <atomic>
#include <memory>

namespace lanrelay::proxyhelper {

// Everything a request needs; all referenced objects outlive the server.
struct pac_context {
  const proxyhelper_config& config;
  const proxy_health& health;
  proxyhelper_counters& counters;
  std::string public_key;  // printed at /-/stats so that administrators can pin it
  // Monitoring (monitor.hpp); without them /-/metrics, /-/status and / answer 404.
  const monitor_sources* monitor = nullptr;
  const metrics::registry* metrics = nullptr;
  // The running configuration after reloads (http.pac_url, health.interval); without it,
  // `config` above.
  const live_config* live = nullptr;
};

boost::beast::http::response<boost::beast::http::string_body> handle_request(
    const boost::beast::http::request<boost::beast::http::empty_body>& request,
    const pac_context& context);

class pac_server : public std::enable_shared_from_this<pac_server> {
 public:
  // Binds config.http_listen:http_port (port 0: any free one); does not accept before start().
  static result<std::shared_ptr<pac_server>> create(boost::asio::io_context& ioc,
                                                    pac_context context);

  void start();
  void stop();
  boost::asio::ip::tcp::endpoint local_endpoint() const;

  pac_server(boost::asio::io_context& ioc, pac_context context, boost::asio::ip::tcp::acceptor acceptor);

 private:
  boost::asio::awaitable<void> accept_loop();
  boost::asio::awaitable<void> serve(boost::asio::ip::tcp::socket socket);

  boost::asio::io_context& ioc_;
  pac_context context_;
  boost::asio::strand<boost::asio::io_context::executor_type> strand_;
  boost::asio::ip::tcp::acceptor acceptor_;
  std::atomic<std::uint32_t> connections_{0};
  bool stopped_ = false;  // strand
};

}  // namespace lanrelay::proxyhelper
