// The generated PAC script (proxyhelper/pac.hpp), evaluated by the agent's PAC engine, chooses
// exactly what the agent's own bypass rules (proxy_protocol::bypass_matches) choose.

#include "lanrelay/proxy_resolution/pac_script.hpp"
#include "lanrelay/proxyhelper/pac.hpp"

#include <gtest/gtest.h>

namespace lanrelay::proxyhelper {
namespace {

namespace proxy = proxy_protocol;

TEST(pac, generated_script_agrees_with_the_bypass_rules) {
  const std::vector<proxy::proxy_entry> healthy{
      {"http://10.77.0.9:3128", 10, false, {"*.corp.example", "10.0.0.0/8", "printer"}},
      {"http://[fd00::9]:8080/", 20, false, {".lab.example", "[fd00::1]"}},
      {"http://proxy3.corp.example", 30, false, {}}};
  proxy_resolution::pac_environment env;
  env.resolve = [](std::string_view) { return std::optional<std::string>("10.1.1.1"); };
  env.my_ip_address = [] { return std::string("10.77.0.4"); };
  std::string detail;
  auto script = proxy_resolution::pac_script::compile(make_pac(healthy), env, &detail);
  ASSERT_TRUE(script) << detail << "\n" << make_pac(healthy);

  for (const std::string host : {"www.example.com", "a.corp.example", "corp.example", "10.2.3.4",
                                 "printer", "PRINTER", "lab.example", "x.lab.example", "fd00::1",
                                 "named.host.10"}) {
    std::string expected;
    for (const auto& p : healthy) {
      const bool bypassed = std::any_of(p.bypass.begin(), p.bypass.end(), [&](const auto& e) {
        return proxy::bypass_matches(e, host);
      });
      if (!bypassed) {
        const auto start = p.url.find("//") + 2;
        auto authority = p.url.substr(start);
        if (authority.ends_with("/")) {
          authority.pop_back();
        }
        if (authority.find(':', authority.find(']') == std::string::npos ? 0 : authority.find(']')) ==
            std::string::npos) {
          authority += ":80";
        }
        expected += (expected.empty() ? "" : "; ") + ("PROXY " + authority);
      }
    }
    if (expected.empty()) {
      expected = "DIRECT";
    }
    const auto answer = script->find_proxy("https://" + host + "/", host, &detail);
    ASSERT_TRUE(answer) << detail;
    EXPECT_EQ(*answer, expected) << host;
  }
}

}  // namespace
}  // namespace lanrelay::proxyhelper
