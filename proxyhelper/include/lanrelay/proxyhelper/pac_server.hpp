#pragma once

// proxyhelperd's HTTP side (4130/tcp, and HTTPS on 4131/tcp): /proxy.pac and /wpad.dat (the
// generated PAC script, or a redirect to the site's own pac_url), /-/healthz, /-/stats, and with
// monitoring sources (monitor.hpp) /-/metrics, /-/status and the status page at /.
//
// Access (serving/admin_access.hpp): /-/stats, /-/metrics, /-/status and / answer loopback and
// [admin] read_networks only (403 otherwise); PAC, WPAD and /-/healthz answer everyone.
//
// handle_request is the socket-free seam; pac_server runs one coroutine per connection
// (keep-alive) on the connections of its http_listener (serving/http_listener.hpp, the same as
// lanrelayd's content server): accept back-off (EMFILE), http.max_connections, the deadlines
// http.header_timeout, http.idle_timeout and http.send_timeout, http.max_header_bytes, and the TLS
// handshake on the HTTPS port (https.handshake_timeout), after which the same code runs.
//
// Threads: each connection runs on its own strand; the acceptors on the listener's strand. The
// handler only reads proxy_health (thread safe) and relaxed atomic counters.

#include "lanrelay/base/error.hpp"
#include "lanrelay/base/tls_identity.hpp"
#include "lanrelay/proxyhelper/config.hpp"
#include "lanrelay/proxyhelper/health.hpp"
#include "lanrelay/proxyhelper/monitor.hpp"
#include "lanrelay/proxyhelper/stats.hpp"
#include "lanrelay/serving/admin_access.hpp"
#include "lanrelay/serving/http_listener.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include <memory>
#include <optional>

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
  // The HTTPS listener's identity; null: HTTP only.
  std::shared_ptr<tls_server_context> tls;
};

// Who sent a request, and how (admin_access.hpp): unknown clients are refused monitoring.
using lanrelay::request_origin;

boost::beast::http::response<boost::beast::http::string_body> handle_request(
    const boost::beast::http::request<boost::beast::http::empty_body>& request,
    const pac_context& context, const request_origin& origin);

class pac_server : public std::enable_shared_from_this<pac_server> {
 public:
  // Binds config.http_listen:http_port (port 0: any free one), and https.port when the context
  // has a TLS identity; does not accept before start().
  static result<std::shared_ptr<pac_server>> create(boost::asio::io_context& ioc,
                                                    pac_context context);

  void start();
  // Stops accepting; connections being served finish their request.
  void stop();
  boost::asio::ip::tcp::endpoint local_endpoint() const;
  // Port 0 when there is no HTTPS listener.
  boost::asio::ip::tcp::endpoint tls_local_endpoint() const;

  pac_server(pac_context context, std::shared_ptr<http_listener> listener);

 private:
  boost::asio::awaitable<void> serve(std::shared_ptr<pac_server> self,
                                     std::shared_ptr<http_connection> connection);

  pac_context context_;
  std::shared_ptr<http_listener> listener_;
};

// The PAC server's listener: http.*, https.port and https.handshake_timeout of the configuration.
http_listener_settings listener_settings(const proxyhelper_config& config);

}  // namespace lanrelay::proxyhelper
