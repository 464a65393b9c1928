// proxy_resolver against loopback servers: step order, the cache and forgetting it. The segment
// side (step 2 and 3) runs in tests/segment/proxy_segment_test.cpp.

#include "lanrelay/agent/proxy_resolver.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/url/parse.hpp>
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <thread>

namespace lanrelay::agent {
namespace {

namespace net = boost::asio;

// Answers every connection on 127.0.0.1 with "200 OK" and counts them.
class tiny_server {
 public:
  tiny_server() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    socklen_t len = sizeof addr;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    ::listen(fd_, 16);
    thread_ = std::thread([this] {
      while (!stop_) {
        pollfd p{fd_, POLLIN, 0};
        if (::poll(&p, 1, 50) != 1) {
          continue;
        }
        const int c = ::accept(fd_, nullptr, nullptr);
        if (c < 0) {
          continue;
        }
        ++connections_;
        char buffer[2048];
        (void)::recv(c, buffer, sizeof buffer, 0);
        const std::string_view reply = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n";
        (void)::send(c, reply.data(), reply.size(), MSG_NOSIGNAL);
        ::close(c);
      }
    });
  }
  ~tiny_server() {
    stop_ = true;
    thread_.join();
    ::close(fd_);
  }
  std::uint16_t port() const { return port_; }
  int connections() const { return connections_; }

 private:
  int fd_ = -1;
  std::uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> connections_{0};
  std::thread thread_;
};

std::uint16_t closed_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

resolution run(proxy_resolver& resolver, const std::string& target) {
  net::io_context ioc;
  std::optional<resolution> out;
  net::co_spawn(ioc, resolver.resolve(boost::urls::url(boost::urls::parse_absolute_uri(target).value())),
                [&](std::exception_ptr e, resolution r) {
                  if (e) {
                    try {
                      std::rethrow_exception(e);
                    } catch (const std::exception& x) {
                      ADD_FAILURE() << "resolve threw: " << x.what();
                    }
                  }
                  out = std::move(r);
                });
  ioc.run();
  return out.value();
}

proxy_resolver_options quiet_options() {
  proxy_resolver_options o;
  o.ask_segment = false;  // never broadcast from a unit test
  o.check_timeout = std::chrono::milliseconds(1000);
  return o;
}

TEST(proxy_resolver, direct_when_nothing_is_configured_then_cached_until_forgotten) {
  tiny_server target;
  proxy_resolver resolver(quiet_options());
  const auto url = "http://127.0.0.1:" + std::to_string(target.port()) + "/x";
  const auto first = run(resolver, url);
  EXPECT_TRUE(first.working) << (first.skipped.empty() ? "" : first.skipped[0].reason);
  EXPECT_EQ(first.decided_by, resolution_step::direct);
  EXPECT_FALSE(first.proxy);
  EXPECT_FALSE(first.settings());
  EXPECT_EQ(target.connections(), 1);

  const auto second = run(resolver, url);
  EXPECT_TRUE(second.from_cache);
  EXPECT_EQ(target.connections(), 1) << "a cached route is not checked again";
  EXPECT_EQ(resolver.cached(), 1u);

  resolver.forget();
  EXPECT_EQ(resolver.cached(), 0u);
  EXPECT_FALSE(run(resolver, url).from_cache);
  EXPECT_EQ(target.connections(), 2);
}

TEST(proxy_resolver, an_environment_proxy_is_checked_and_used) {
  tiny_server proxy;  // answers the absolute-form GET itself, as a proxy would
  auto options = quiet_options();
  options.system.http_proxy = "127.0.0.1:" + std::to_string(proxy.port());
  options.credentials = "agent:secret";
  proxy_resolver resolver(options);
  const auto r = run(resolver, "http://203.0.113.9/x");  // never contacted directly
  ASSERT_TRUE(r.working);
  EXPECT_EQ(r.decided_by, resolution_step::environment);
  EXPECT_EQ(r.proxy, "http://127.0.0.1:" + std::to_string(proxy.port()));
  const auto settings = r.settings(options.credentials);
  ASSERT_TRUE(settings);
  EXPECT_EQ(settings->proxy.userinfo(), "agent:secret");
  EXPECT_EQ(proxy.connections(), 1);
}

TEST(proxy_resolver, a_broken_environment_proxy_is_reported_and_nothing_is_cached) {
  auto options = quiet_options();
  options.system.https_proxy = "http://127.0.0.1:" + std::to_string(closed_port());
  proxy_resolver resolver(options);
  const auto r = run(resolver, "https://127.0.0.1:" + std::to_string(closed_port()) + "/");
  EXPECT_FALSE(r.working);
  EXPECT_EQ(r.decided_by, resolution_step::none);
  ASSERT_EQ(r.skipped.size(), 1u);
  EXPECT_EQ(r.skipped[0].step, resolution_step::environment);
  EXPECT_NE(r.skipped[0].reason.find("connectivity check failed"), std::string::npos);
  EXPECT_FALSE(r.asked_segment);
  EXPECT_EQ(resolver.cached(), 0u);
}

TEST(proxy_resolver, no_proxy_sends_the_target_direct) {
  tiny_server target;
  auto options = quiet_options();
  options.system.http_proxy = "http://127.0.0.1:" + std::to_string(closed_port());
  options.system.no_proxy = {"127.0.0.0/8"};
  proxy_resolver resolver(options);
  const auto r = run(resolver, "http://127.0.0.1:" + std::to_string(target.port()) + "/");
  EXPECT_TRUE(r.working);
  EXPECT_EQ(r.decided_by, resolution_step::direct);
}

}  // namespace
}  // namespace lanrelay::agent

namespace lanrelay::agent {
namespace {

// "user:password" goes into the proxy URL as a user and a password: a ':' or '@' in the password
// stays part of it (it was once set as one userinfo string, which the proxy rejected).
TEST(resolution, credentials_keep_reserved_characters_of_the_password) {
  resolution r;
  r.working = true;
  r.proxy = "http://10.77.0.1:3128";
  const auto with = r.settings(std::string("mirror:p@ss:w0rd"));
  ASSERT_TRUE(with);
  EXPECT_EQ(with->proxy.user(), "mirror");
  EXPECT_EQ(with->proxy.password(), "p@ss:w0rd");
  EXPECT_EQ(with->proxy.host(), "10.77.0.1");
  r.proxy.reset();  // direct: nothing to add credentials to
  EXPECT_FALSE(r.settings(std::string("mirror:x")));
}

}  // namespace
}  // namespace lanrelay::agent
