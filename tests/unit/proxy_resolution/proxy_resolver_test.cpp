// proxy_resolver against loopback servers: step order, the cache and forgetting it. The segment
// side (step 2 and 3) runs in tests/segment/proxy_segment_test.cpp.

#include "lanrelay/proxy_resolution/proxy_resolver.hpp"

#include "free_port.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/strand.hpp>
#include <boost/url/parse.hpp>
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace lanrelay::proxy_resolution {
namespace {

namespace net = boost::asio;

// Answers every connection on 127.0.0.1 with "200 OK" (and `body`), counts them and keeps what
// each request sent.
class tiny_server {
 public:
  explicit tiny_server(std::string body = "ok\n") : body_(std::move(body)) {
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
        const ssize_t n = ::recv(c, buffer, sizeof buffer, 0);
        {
          std::lock_guard lock(mutex_);
          requests_.emplace_back(buffer, n > 0 ? static_cast<std::size_t>(n) : 0);
        }
        const std::string reply = "HTTP/1.1 200 OK\r\nContent-Length: " +
                                  std::to_string(body_.size()) + "\r\n\r\n" + body_;
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
  std::vector<std::string> requests() const {
    std::lock_guard lock(mutex_);
    return requests_;
  }

 private:
  const std::string body_;
  mutable std::mutex mutex_;
  std::vector<std::string> requests_;
  int fd_ = -1;
  std::uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> connections_{0};
  std::thread thread_;
};

// A loopback port nothing listens on.
std::uint16_t closed_port() { return test::free_port(); }

// The io_context every resolver of these tests is built on; run() runs it until its resolution
// ends.
net::io_context& context() {
  static net::io_context ioc;
  return ioc;
}

resolution run(proxy_resolver& resolver, const std::string& target) {
  auto& ioc = context();
  ioc.restart();
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
  proxy_resolver resolver(context().get_executor(), quiet_options());
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

// Callers on other executors and threads (the relay's mirror sources, each on its own strand)
// share one resolver: their resolutions run one at a time on its strand, so the second finds the
// first one's route in the cache instead of checking it again.
TEST(proxy_resolver, callers_on_other_executors_take_turns_and_share_the_cache) {
  tiny_server target;
  net::io_context resolver_context;
  proxy_resolver resolver(resolver_context.get_executor(), quiet_options());
  const auto url = boost::urls::url(boost::urls::parse_absolute_uri(
      "http://127.0.0.1:" + std::to_string(target.port()) + "/x").value());
  net::io_context callers;
  std::mutex mutex;
  std::vector<resolution> found;
  for (int i = 0; i < 4; ++i) {
    net::co_spawn(net::make_strand(callers), resolver.resolve(url),
                  [&](std::exception_ptr e, resolution r) {
                    EXPECT_FALSE(e);
                    std::lock_guard lock(mutex);
                    found.push_back(std::move(r));
                  });
  }
  auto keep = net::make_work_guard(resolver_context);  // until every caller has its answer
  std::thread other([&] { resolver_context.run(); });
  std::thread second_caller([&] { callers.run(); });
  callers.run();
  second_caller.join();
  keep.reset();
  other.join();
  ASSERT_EQ(found.size(), 4u);
  EXPECT_EQ(target.connections(), 1) << "only the first resolution checks the route";
  int from_cache = 0;
  for (const auto& r : found) {
    EXPECT_TRUE(r.working);
    from_cache += r.from_cache ? 1 : 0;
  }
  EXPECT_EQ(from_cache, 3);
  EXPECT_EQ(resolver.cached(), 1u);
}

TEST(proxy_resolver, an_environment_proxy_is_checked_and_used) {
  tiny_server proxy;  // answers the absolute-form GET itself, as a proxy would
  auto options = quiet_options();
  options.system.http_proxy = "127.0.0.1:" + std::to_string(proxy.port());
  options.credentials =
      proxy_credentials::bind("agent:secret", "127.0.0.1:" + std::to_string(proxy.port())).value();
  proxy_resolver resolver(context().get_executor(), options);
  const auto r = run(resolver, "http://203.0.113.9/x");  // never contacted directly
  ASSERT_TRUE(r.working);
  EXPECT_EQ(r.decided_by, resolution_step::environment);
  EXPECT_EQ(r.proxy, "http://127.0.0.1:" + std::to_string(proxy.port()));
  const auto settings = r.settings(options.credentials);
  ASSERT_TRUE(settings);
  EXPECT_EQ(settings->proxy.userinfo(), "agent:secret");
  EXPECT_EQ(proxy.connections(), 1);
  ASSERT_EQ(proxy.requests().size(), 1u);
  EXPECT_NE(proxy.requests()[0].find("Proxy-Authorization: Basic YWdlbnQ6c2VjcmV0"),
            std::string::npos)
      << proxy.requests()[0];
}

bool sent_credentials(const tiny_server& proxy) {
  for (const auto& request : proxy.requests()) {
    if (request.find("Proxy-Authorization") != std::string::npos) {
      return true;
    }
  }
  return false;
}

// Credentials bound to another proxy are not sent to this one, neither for the check nor for
// the downloads the route is used for.
TEST(proxy_credentials, stay_away_from_a_proxy_they_are_not_bound_to) {
  tiny_server proxy;
  auto options = quiet_options();
  options.system.http_proxy = "127.0.0.1:" + std::to_string(proxy.port());
  options.credentials =
      proxy_credentials::bind("agent:secret", "127.0.0.1:" + std::to_string(closed_port())).value();
  proxy_resolver resolver(context().get_executor(), options);
  const auto r = run(resolver, "http://203.0.113.9/x");
  ASSERT_TRUE(r.working);
  EXPECT_EQ(proxy.connections(), 1);
  EXPECT_FALSE(sent_credentials(proxy)) << proxy.requests().at(0);
  const auto settings = r.settings(options.credentials);
  ASSERT_TRUE(settings);
  EXPECT_FALSE(settings->proxy.has_userinfo());
}

// A PAC script (fetched over plain HTTP: anyone on the path may have written it) names a proxy:
// it gets the credentials only if they are bound to it.
TEST(proxy_credentials, a_proxy_named_by_a_pac_script_gets_none_unless_bound_to_it) {
  for (const bool bound_to_it : {false, true}) {
    tiny_server named;  // the proxy the PAC script names
    tiny_server pac("function FindProxyForURL(url, host) { return 'PROXY 127.0.0.1:" +
                    std::to_string(named.port()) + "'; }");
    auto options = quiet_options();
    options.system.pac_url = "http://127.0.0.1:" + std::to_string(pac.port()) + "/proxy.pac";
    const auto port = bound_to_it ? named.port() : closed_port();
    options.credentials =
        proxy_credentials::bind("agent:secret", "127.0.0.1:" + std::to_string(port)).value();
    proxy_resolver resolver(context().get_executor(), options);
    const auto r = run(resolver, "http://203.0.113.9/x");
    ASSERT_TRUE(r.working) << (r.skipped.empty() ? "" : r.skipped[0].reason);
    EXPECT_EQ(r.decided_by, resolution_step::pac);
    EXPECT_EQ(named.connections(), 1);
    EXPECT_EQ(sent_credentials(named), bound_to_it) << named.requests().at(0);
    EXPECT_EQ(r.settings(options.credentials)->proxy.has_userinfo(), bound_to_it);
  }
}

// The PAC script that reached 2.1 GB before the cage: now skipped as broken, with the reason,
// and the resolution goes on (here: nothing else is configured, so nothing works).
TEST(proxy_resolver, a_hoarding_pac_script_is_skipped_as_broken) {
  tiny_server pac(
      "var hoard = [];\nfunction FindProxyForURL(url, host) {\n  return 'PROXY p:1';\n}\n"
      "var s = 'hoard';\nwhile (true) {\n  hoard.push(s);\n  s = s + s;\n}\n");
  auto options = quiet_options();
  options.system.pac_url = "http://127.0.0.1:" + std::to_string(pac.port()) + "/proxy.pac";
  proxy_resolver resolver(context().get_executor(), options);
  // After the broken script, direct is tried: to a closed local port, so it fails too.
  const auto r = run(resolver, "http://127.0.0.1:" + std::to_string(closed_port()) + "/x");
  EXPECT_FALSE(r.working);
  ASSERT_EQ(r.skipped.size(), 2u);
  EXPECT_EQ(r.skipped[0].step, resolution_step::pac);
  EXPECT_EQ(r.skipped[1].step, resolution_step::direct);
  EXPECT_NE(r.skipped[0].reason.find("broken PAC script"), std::string::npos)
      << r.skipped[0].reason;
  EXPECT_NE(r.skipped[0].reason.find("64 MiB"), std::string::npos) << r.skipped[0].reason;
}

TEST(proxy_credentials, bind_takes_host_and_port_and_fit_compares_both) {
  std::string why;
  EXPECT_FALSE(proxy_credentials::bind("u:p", "proxy.corp", &why));
  EXPECT_NE(why.find("host:port"), std::string::npos) << why;
  EXPECT_FALSE(proxy_credentials::bind("u:p", "x@proxy.corp:3128"));
  EXPECT_FALSE(proxy_credentials::bind("u:p", ""));
  EXPECT_FALSE(proxy_credentials::bind("u:p", "proxy.corp:0"));
  EXPECT_FALSE(proxy_credentials::bind("no-colon", "proxy.corp:3128", &why));
  EXPECT_NE(why.find("user:password"), std::string::npos) << why;

  const auto c = proxy_credentials::bind("u:p", "Proxy.Corp.example:3128").value();
  const auto fit = [&](std::string_view url) {
    return c.fit(boost::urls::parse_absolute_uri(url).value());
  };
  EXPECT_TRUE(fit("http://proxy.corp.example:3128"));
  EXPECT_TRUE(fit("http://PROXY.corp.example:3128/"));
  EXPECT_FALSE(fit("http://proxy.corp.example:3129"));
  EXPECT_FALSE(fit("http://proxy.corp.example"));  // port 80
  EXPECT_FALSE(fit("http://evil.example:3128"));
  EXPECT_FALSE(fit("http://proxy.corp.example.evil.example:3128"));
  EXPECT_FALSE(fit("socks5://proxy.corp.example:3128"));

  const auto v6 = proxy_credentials::bind("u:p", "[2001:db8::1]:8080").value();
  EXPECT_TRUE(v6.fit(boost::urls::parse_absolute_uri("http://[2001:db8::1]:8080").value()));
  EXPECT_FALSE(v6.fit(boost::urls::parse_absolute_uri("http://[2001:db8::2]:8080").value()));
  const auto on_80 = proxy_credentials::bind("u:p", "10.0.0.1:80").value();
  EXPECT_TRUE(on_80.fit(boost::urls::parse_absolute_uri("http://10.0.0.1").value()));
}

TEST(proxy_resolver, a_broken_environment_proxy_is_reported_and_nothing_is_cached) {
  auto options = quiet_options();
  options.system.https_proxy = "http://127.0.0.1:" + std::to_string(closed_port());
  proxy_resolver resolver(context().get_executor(), options);
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
  proxy_resolver resolver(context().get_executor(), options);
  const auto r = run(resolver, "http://127.0.0.1:" + std::to_string(target.port()) + "/");
  EXPECT_TRUE(r.working);
  EXPECT_EQ(r.decided_by, resolution_step::direct);
}

}  // namespace
}  // namespace lanrelay::proxy_resolution

namespace lanrelay::proxy_resolution {
namespace {

// "user:password" goes into the proxy URL as a user and a password: a ':' or '@' in the password
// stays part of it (it was once set as one userinfo string, which the proxy rejected).
TEST(resolution, credentials_keep_reserved_characters_of_the_password) {
  resolution r;
  r.working = true;
  r.proxy = "http://10.77.0.1:3128";
  const auto with = r.settings(proxy_credentials::bind("mirror:p@ss:w0rd", "10.77.0.1:3128").value());
  ASSERT_TRUE(with);
  EXPECT_EQ(with->proxy.user(), "mirror");
  EXPECT_EQ(with->proxy.password(), "p@ss:w0rd");
  EXPECT_EQ(with->proxy.host(), "10.77.0.1");
  r.proxy.reset();  // direct: nothing to add credentials to
  EXPECT_FALSE(r.settings(proxy_credentials::bind("mirror:x", "10.77.0.1:3128").value()));
}

}  // namespace
}  // namespace lanrelay::proxy_resolution

namespace lanrelay::proxy_resolution {
namespace {

TEST(resolution, settings_carry_the_scheme_of_the_route) {
  resolution r;
  r.working = true;
  r.proxy = "http://10.77.0.1:3128";
  r.auth = proxy_auth_scheme::ntlm;
  const auto with = r.settings(proxy_credentials::bind("CORP\\svc:pw", "10.77.0.1:3128").value());
  ASSERT_TRUE(with);
  EXPECT_EQ(with->auth, proxy_auth_scheme::ntlm);
  EXPECT_EQ(with->proxy.user(), "CORP\\svc");
}

// A proxyhelperd stand-in on 127.0.0.1: answers one query, unsigned, with `entry`.
class one_answer {
 public:
  explicit one_answer(proxy_protocol::proxy_entry entry) : entry_(std::move(entry)) {
    fd_ = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    socklen_t len = sizeof addr;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] {
      std::vector<std::byte> buffer(proxy_protocol::max_datagram);
      sockaddr_in from{};
      socklen_t from_len = sizeof from;
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 30'000) != 1) {
        return;
      }
      const ssize_t n = ::recvfrom(fd_, buffer.data(), buffer.size(), 0,
                                   reinterpret_cast<sockaddr*>(&from), &from_len);
      const auto q = proxy_protocol::decode_query(
          std::span(buffer.data(), n > 0 ? static_cast<std::size_t>(n) : 0));
      if (!q) {
        return;
      }
      proxy_protocol::answer a;
      a.transaction_id = q->transaction_id;
      a.sender_cookie = 0x77;
      a.expires_at = std::chrono::system_clock::now() + std::chrono::minutes(5);
      a.proxies.push_back(entry_);
      const auto bytes = proxy_protocol::encode(a, nullptr, proxy_protocol::max_datagram).value();
      ::sendto(fd_, bytes.data(), bytes.size(), 0, reinterpret_cast<sockaddr*>(&from), from_len);
    });
  }
  ~one_answer() {
    thread_.join();
    ::close(fd_);
  }
  std::uint16_t port() const { return port_; }

 private:
  proxy_protocol::proxy_entry entry_;
  int fd_ = -1;
  std::uint16_t port_ = 0;
  std::thread thread_;
};

// The scheme proxyhelperd's answer names is the one the connectivity check logs in with and the
// one the route keeps for the download. A Negotiate proxy that needs credentials is tried without
// configured ones: the process's Kerberos credentials log in.
TEST(proxy_resolver, the_scheme_of_an_advertised_proxy_reaches_the_check_and_the_route) {
  tiny_server proxy;
  one_answer helper({"http://127.0.0.1:" + std::to_string(proxy.port()), 10, true, {},
                     proxy_protocol::auth_scheme::negotiate});
  auto options = quiet_options();
  options.system.http_proxy = "http://127.0.0.1:" + std::to_string(closed_port());
  options.ask_segment = true;  // by unicast to the stand-in only
  options.query.targets = {net::ip::make_address("127.0.0.1")};
  options.query.port = helper.port();
  options.query.window = std::chrono::milliseconds(5'000);
  options.query.ipv6 = false;
  options.query.trust.accept_unsigned = true;
  proxy_resolver resolver(context().get_executor(), options);
  const auto r = run(resolver, "http://127.0.0.1:" + std::to_string(closed_port()) + "/x");
  ASSERT_TRUE(r.asked_segment);
  ASSERT_EQ(r.answers, 1u);
  if (r.working) {  // a client that logs in with Negotiate
    EXPECT_EQ(r.decided_by, resolution_step::proxyhelper);
    EXPECT_EQ(r.auth, proxy_auth_scheme::negotiate);
    EXPECT_EQ(r.settings()->auth, proxy_auth_scheme::negotiate);
  } else {  // one that refuses it: the check tried it
    ASSERT_EQ(r.skipped.size(), 2u);
    EXPECT_EQ(r.skipped[1].step, resolution_step::proxyhelper);
    EXPECT_NE(r.skipped[1].reason.find("(auth negotiate)"), std::string::npos) << r.skipped[1].reason;
  }
}

}  // namespace
}  // namespace lanrelay::proxy_resolution

namespace lanrelay::proxy_resolution {
namespace {

// How the route logs in (issue 13): the scheme proxyhelperd's answer names for the proxy it gave;
// for any other proxy (the environment's, a PAC script's, an answer that names none), the
// configured scheme when the configured credentials are bound to it, else no login.

proxy_resolver_options login_options() {
  auto o = quiet_options();
  o.check_timeout = std::chrono::milliseconds(10'000);  // a loaded machine must not fail a check
  return o;
}

std::string proxy_authorization(const tiny_server& proxy) {
  for (const auto& request : proxy.requests()) {
    if (const auto at = request.find("Proxy-Authorization: "); at != std::string::npos) {
      return request.substr(at, request.find("\r\n", at) - at);
    }
  }
  return {};
}

// The helper knows its proxy: an answer that says Basic is not overridden by the configured
// scheme (which once replaced any Basic, sending Digest to a Basic proxy).
TEST(proxy_login, the_scheme_an_answer_names_wins_over_the_configured_one) {
  tiny_server proxy;
  const std::string proxy_url = "http://127.0.0.1:" + std::to_string(proxy.port());
  one_answer helper({proxy_url, 10, true, {}, proxy_protocol::auth_scheme::basic});
  auto options = login_options();
  options.ask_segment = true;  // by unicast to the stand-in only
  options.query.targets = {net::ip::make_address("127.0.0.1")};
  options.query.port = helper.port();
  options.query.window = std::chrono::milliseconds(5'000);
  options.query.ipv6 = false;
  options.query.trust.accept_unsigned = true;
  options.credentials = proxy_credentials::bind("alice:pw", "127.0.0.1:" + std::to_string(proxy.port())).value();
  options.credentials->auth = proxy_auth_scheme::digest;
  proxy_resolver resolver(context().get_executor(), options);
  const auto r = run(resolver, "http://127.0.0.1:" + std::to_string(closed_port()) + "/x");
  ASSERT_TRUE(r.working) << (r.skipped.empty() ? "" : r.skipped.back().reason);
  EXPECT_EQ(r.decided_by, resolution_step::proxyhelper);
  EXPECT_EQ(r.auth, proxy_auth_scheme::basic);
  const auto settings = r.settings(options.credentials);
  ASSERT_TRUE(settings);
  EXPECT_EQ(settings->auth, proxy_auth_scheme::basic);
  EXPECT_EQ(settings->proxy.user(), "alice");
  // The check logged in with Basic at once (Digest would have waited for a challenge).
  EXPECT_TRUE(proxy_authorization(proxy).starts_with("Proxy-Authorization: Basic "))
      << proxy_authorization(proxy);
}

// An answer without a scheme: the configured one, since the credentials are bound to the proxy.
TEST(proxy_login, an_answer_without_a_scheme_takes_the_configured_one_for_the_bound_proxy) {
  tiny_server proxy;
  const std::string proxy_url = "http://127.0.0.1:" + std::to_string(proxy.port());
  one_answer helper({proxy_url, 10, true, {}, std::nullopt});
  auto options = login_options();
  options.ask_segment = true;
  options.query.targets = {net::ip::make_address("127.0.0.1")};
  options.query.port = helper.port();
  options.query.window = std::chrono::milliseconds(5'000);
  options.query.ipv6 = false;
  options.query.trust.accept_unsigned = true;
  options.credentials = proxy_credentials::bind("alice:pw", "127.0.0.1:" + std::to_string(proxy.port())).value();
  options.credentials->auth = proxy_auth_scheme::ntlm;
  proxy_resolver resolver(context().get_executor(), options);
  const auto r = run(resolver, "http://127.0.0.1:" + std::to_string(closed_port()) + "/x");
  ASSERT_TRUE(r.working) << (r.skipped.empty() ? "" : r.skipped.back().reason);
  EXPECT_EQ(r.auth, proxy_auth_scheme::ntlm);
  EXPECT_EQ(r.settings(options.credentials)->auth, proxy_auth_scheme::ntlm);
}

// Negotiate needs no user and password: credentials bound to a proxy without them (the relay's
// credentials_proxy alone, `--credentials-proxy` without `--credentials-env`) give that proxy,
// here the environment's, the Negotiate login, and add nothing to its URL.
TEST(proxy_login, a_kerberos_binding_gives_the_configured_proxy_negotiate) {
  tiny_server proxy;
  auto options = login_options();
  options.system.http_proxy = "http://127.0.0.1:" + std::to_string(proxy.port());
  auto bound = proxy_credentials::bind("", "127.0.0.1:" + std::to_string(proxy.port()));
  ASSERT_TRUE(bound);
  options.credentials = *bound;
  options.credentials->auth = proxy_auth_scheme::negotiate;
  proxy_resolver resolver(context().get_executor(), options);
  const auto r = run(resolver, "http://127.0.0.1:" + std::to_string(closed_port()) + "/x");
  ASSERT_TRUE(r.working) << (r.skipped.empty() ? "" : r.skipped.back().reason);
  EXPECT_EQ(r.decided_by, resolution_step::environment);
  EXPECT_EQ(r.auth, proxy_auth_scheme::negotiate);
  const auto settings = r.settings(options.credentials);
  ASSERT_TRUE(settings);
  EXPECT_EQ(settings->auth, proxy_auth_scheme::negotiate);
  EXPECT_FALSE(settings->proxy.has_userinfo());
  // Still not user:password for anything else.
  EXPECT_FALSE(proxy_credentials::bind("alice", "127.0.0.1:3128"));
}

// A proxy the credentials are not bound to gets no login, whatever scheme is configured.
TEST(proxy_login, a_system_proxy_gets_no_login_unless_the_credentials_are_bound_to_it) {
  tiny_server proxy;
  auto options = login_options();
  options.system.http_proxy = "http://127.0.0.1:" + std::to_string(proxy.port());
  options.credentials = proxy_credentials::bind("alice:pw", "10.77.0.1:3128").value();
  options.credentials->auth = proxy_auth_scheme::ntlm;
  proxy_resolver resolver(context().get_executor(), options);
  const auto r = run(resolver, "http://127.0.0.1:" + std::to_string(closed_port()) + "/x");
  ASSERT_TRUE(r.working) << (r.skipped.empty() ? "" : r.skipped.back().reason);
  EXPECT_EQ(r.auth, proxy_auth_scheme::basic);
  const auto settings = r.settings(options.credentials);
  ASSERT_TRUE(settings);
  EXPECT_FALSE(settings->proxy.has_userinfo());
  EXPECT_EQ(proxy_authorization(proxy), "");
}

}  // namespace
}  // namespace lanrelay::proxy_resolution
