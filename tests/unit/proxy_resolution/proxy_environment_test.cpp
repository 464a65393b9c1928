#include "lanrelay/proxy_resolution/system_proxy.hpp"

#include <boost/url/parse.hpp>
#include <boost/url/url.hpp>
#include <gtest/gtest.h>

#include <cstdlib>

namespace lanrelay::proxy_resolution {
namespace {

boost::urls::url url(std::string_view text) {
  return boost::urls::url(boost::urls::parse_absolute_uri(text).value());
}

TEST(system_proxy, no_proxy_follows_curl) {
  const std::vector<std::string> list{".corp.example", "example.org", "10.0.0.0/8",
                                      "192.168.1.5", "svc:8443", "[fd00::1]"};
  EXPECT_TRUE(no_proxy_matches(list, "a.corp.example", 443));
  EXPECT_TRUE(no_proxy_matches(list, "corp.example", 443));
  EXPECT_TRUE(no_proxy_matches(list, "EXAMPLE.org", 80));
  EXPECT_TRUE(no_proxy_matches(list, "www.example.org", 80));
  EXPECT_FALSE(no_proxy_matches(list, "badexample.org", 80));
  EXPECT_TRUE(no_proxy_matches(list, "10.9.8.7", 80));
  EXPECT_FALSE(no_proxy_matches(list, "11.9.8.7", 80));
  EXPECT_TRUE(no_proxy_matches(list, "192.168.1.5", 80));
  EXPECT_TRUE(no_proxy_matches(list, "svc", 8443));
  EXPECT_FALSE(no_proxy_matches(list, "svc", 443));
  EXPECT_TRUE(no_proxy_matches(list, "fd00::1", 443));
  EXPECT_TRUE(no_proxy_matches({"*"}, "anything", 1));
  EXPECT_FALSE(no_proxy_matches({}, "anything", 1));
}

TEST(system_proxy, picks_the_variable_of_the_target_scheme) {
  system_proxy_settings s;
  s.http_proxy = "plain.corp:3128";
  s.https_proxy = "http://secure.corp:3128";
  s.no_proxy = {"internal.corp"};
  EXPECT_EQ(environment_proxy_for(s, url("http://www.example.com/")), "http://plain.corp:3128");
  EXPECT_EQ(environment_proxy_for(s, url("https://www.example.com/")), "http://secure.corp:3128");
  EXPECT_EQ(environment_proxy_for(s, url("https://internal.corp/")), std::nullopt);
  s.https_proxy.reset();
  EXPECT_EQ(environment_proxy_for(s, url("https://www.example.com/")), std::nullopt);
}

TEST(system_proxy, reads_lower_case_first_then_upper_case) {
  ::setenv("https_proxy", "http://lower:1", 1);
  ::setenv("HTTPS_PROXY", "http://upper:1", 1);
  ::setenv("HTTP_PROXY", "http://upper-http:1", 1);
  ::unsetenv("http_proxy");
  ::setenv("no_proxy", " a.example , ,b.example", 1);
  const auto s = system_proxy_settings::from_environment();
  EXPECT_EQ(s.https_proxy, "http://lower:1");
  EXPECT_EQ(s.http_proxy, "http://upper-http:1");
  EXPECT_EQ(s.no_proxy, (std::vector<std::string>{"a.example", "b.example"}));
  for (const char* name : {"https_proxy", "HTTPS_PROXY", "HTTP_PROXY", "no_proxy"}) {
    ::unsetenv(name);
  }
}

}  // namespace
}  // namespace lanrelay::proxy_resolution
