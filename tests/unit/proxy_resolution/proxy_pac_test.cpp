#include "lanrelay/proxy_resolution/pac_script.hpp"

#include <gtest/gtest.h>

namespace lanrelay::proxy_resolution {
namespace {

pac_environment fixed_environment() {
  pac_environment env;
  env.resolve = [](std::string_view host) -> std::optional<std::string> {
    if (host == "intranet.corp.example") {
      return "10.20.0.5";
    }
    if (host == "www.example.com") {
      return "93.184.216.34";
    }
    return std::nullopt;
  };
  env.my_ip_address = [] { return std::string("10.77.0.4"); };
  return env;
}

std::string evaluate(std::string_view script, std::string_view url, std::string_view host) {
  std::string detail;
  auto compiled = pac_script::compile(script, fixed_environment(), &detail);
  EXPECT_TRUE(compiled) << detail;
  if (!compiled) {
    return {};
  }
  auto answer = compiled->find_proxy(url, host, &detail);
  EXPECT_TRUE(answer) << detail;
  return answer ? *answer : std::string();
}

TEST(pac_script, standard_helpers_behave_as_browsers_define_them) {
  constexpr std::string_view script = R"JS(
function FindProxyForURL(url, host) {
  var r = [];
  r.push(isPlainHostName(host) ? 'plain' : 'dotted');
  r.push(dnsDomainIs(host, '.corp.example') ? 'corp' : 'nocorp');
  r.push(shExpMatch(url, 'https://*.example.com/*') ? 'sh' : 'nosh');
  r.push(isInNet(host, '10.0.0.0', '255.0.0.0') ? 'net10' : 'nonet10');
  r.push(isResolvable(host) ? 'res' : 'nores');
  r.push(dnsDomainLevels(host));
  r.push(myIpAddress());
  r.push(localHostOrDomainIs('intranet', 'intranet.corp.example') ? 'local' : 'nolocal');
  r.push(typeof weekdayRange('MON', 'SUN') + typeof dateRange(1, 31) + typeof timeRange(0, 24));
  return r.join(' ');
})JS";
  EXPECT_EQ(evaluate(script, "https://intranet.corp.example/x", "intranet.corp.example"),
            "dotted corp nosh net10 res 2 10.77.0.4 local booleanbooleanboolean");
  EXPECT_EQ(evaluate(script, "https://www.example.com/a", "www.example.com"),
            "dotted nocorp sh nonet10 res 2 10.77.0.4 local booleanbooleanboolean");
  EXPECT_EQ(evaluate(script, "http://printer/", "printer"),
            "plain nocorp nosh nonet10 nores 0 10.77.0.4 local booleanbooleanboolean");
  EXPECT_EQ(evaluate("function FindProxyForURL(u, h) { return String(weekdayRange('SUN', 'SAT')) "
                     "+ dateRange('JAN', 'DEC') + timeRange(0, 0, 23, 60); }",
                     "http://a/", "a"),
            "truetruetrue");
}

TEST(pac_script, errors_are_reported_by_kind) {
  std::string detail;
  EXPECT_EQ(pac_script::compile("function (", fixed_environment(), &detail).error(),
            pac_errc::script_error);
  EXPECT_NE(detail.find("SyntaxError"), std::string::npos) << detail;
  EXPECT_EQ(pac_script::compile("var x = 1;", fixed_environment()).error(),
            pac_errc::missing_function);
  EXPECT_EQ(pac_script::compile(std::string(max_pac_script_size + 1, ' '), fixed_environment())
                .error(),
            pac_errc::too_large);
  auto throws = pac_script::compile("function FindProxyForURL(u, h) { throw new Error('boom'); }",
                                    fixed_environment());
  ASSERT_TRUE(throws);
  EXPECT_EQ(throws->find_proxy("http://a/", "a", &detail).error(), pac_errc::script_error);
  EXPECT_NE(detail.find("boom"), std::string::npos);
  auto number = pac_script::compile("function FindProxyForURL(u, h) { return 42; }",
                                    fixed_environment());
  ASSERT_TRUE(number);
  EXPECT_EQ(number->find_proxy("http://a/", "a").error(), pac_errc::bad_result);
}

// A PAC script comes from the network: one that never returns must not hang the agent.
TEST(pac_script, a_script_that_never_returns_is_stopped_at_the_time_limit) {
  std::string detail;
  const auto started = std::chrono::steady_clock::now();
  EXPECT_EQ(pac_script::compile("while (true) {}", fixed_environment(), &detail).error(),
            pac_errc::timeout);
  // Stopped by the limit, not at once; the upper bound is a hang guard only (a busy machine
  // stretches the script's wall time, never shortens it).
  EXPECT_GE(std::chrono::steady_clock::now() - started, pac_time_limit);
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(60));

  auto loops = pac_script::compile(
      "function FindProxyForURL(u, h) { if (h == 'loop') { for (;;) {} } return 'DIRECT'; }",
      fixed_environment());
  ASSERT_TRUE(loops);
  EXPECT_EQ(loops->find_proxy("http://loop/", "loop", &detail).error(), pac_errc::timeout);
  // The heap is still usable, with a fresh time limit for the next call.
  EXPECT_EQ(loops->find_proxy("http://a/", "a").value(), "DIRECT");
  // A script that takes most of its time is still allowed to finish.
  auto slow = pac_script::compile(
      "function FindProxyForURL(u, h) { var s = 0; for (var i = 0; i < 200000; i++) { s += i; } "
      "return 'DIRECT'; }",
      fixed_environment());
  ASSERT_TRUE(slow);
  EXPECT_EQ(slow->find_proxy("http://a/", "a").value(), "DIRECT");
}

TEST(pac_script, parse_result_keeps_order_and_flags_what_it_cannot_use) {
  const auto routes = parse_pac_result(" PROXY 10.0.0.8:3128 ;SOCKS5 s:1080; proxy p2:8080; DIRECT");
  ASSERT_EQ(routes.size(), 4u);
  EXPECT_EQ(routes[0], (pac_route{pac_route::kind::proxy, "http://10.0.0.8:3128", "PROXY 10.0.0.8:3128"}));
  EXPECT_EQ(routes[1].type, pac_route::kind::unsupported);
  EXPECT_EQ(routes[2].proxy_url, "http://p2:8080");
  EXPECT_EQ(routes[3].type, pac_route::kind::direct);
  EXPECT_EQ(parse_pac_result("").front().type, pac_route::kind::direct);
  EXPECT_EQ(parse_pac_result("PROXY user@evil/x").front().type, pac_route::kind::unsupported);
  EXPECT_EQ(parse_pac_result("PROXY").front().type, pac_route::kind::unsupported);
}

}  // namespace
}  // namespace lanrelay::proxy_resolution
