#include "lanrelay/base/redact.hpp"

#include <gtest/gtest.h>

namespace lanrelay {
namespace {

TEST(redact, removes_user_and_password) {
  EXPECT_EQ(redact_urls("http://user:s3cret@proxy:3128"), "http://***@proxy:3128");
  EXPECT_EQ(redact_urls("socks5h://u:p@[::1]:1080/"), "socks5h://***@[::1]:1080/");
  EXPECT_EQ(redact_urls("https://TOKEN@host/path?q=1"), "https://***@host/path?q=1");
}

TEST(redact, finds_urls_inside_text) {
  EXPECT_EQ(redact_urls("event=route route=\"http://a:b@p:1 (environment)\" skipped=\"x\""),
            "event=route route=\"http://***@p:1 (environment)\" skipped=\"x\"");
  EXPECT_EQ(redact_urls("{\"upstream\":\"https://u:pw@au.example/au/\",\"route\":\"http://v:w@q:3\"}"),
            "{\"upstream\":\"https://***@au.example/au/\",\"route\":\"http://***@q:3\"}");
  EXPECT_EQ(redact_urls("proxy=http://a:b@p:1,http://c:d@q:2"),
            "proxy=http://***@p:1,http://***@q:2");
}

TEST(redact, password_with_reserved_characters) {
  // '@' and ':' in a password (not escaped, as an administrator may type it): the last '@' of
  // the authority ends the userinfo.
  EXPECT_EQ(redact_urls("http://user:p@ss:w0rd@proxy:3128/"), "http://***@proxy:3128/");
  EXPECT_EQ(redact_urls("http://user:p%40ss;'!@proxy:3128"), "http://***@proxy:3128");
}

TEST(redact, leaves_urls_without_credentials_alone) {
  for (const char* text : {"", "no url here", "http://proxy:3128", "https://host/a@b/c",
                           "https://host/?mail=a@b", "mailto:a@b", "a://", "://",
                           "http://host#x@y"}) {
    EXPECT_EQ(redact_urls(text), text) << text;
    EXPECT_FALSE(has_url_credentials(text)) << text;
  }
}

TEST(redact, scheme_less_and_odd_forms) {
  EXPECT_EQ(redact_urls("://u:p@h"), "://***@h");
  EXPECT_EQ(redact_urls("x http://@h"), "x http://***@h");
  EXPECT_TRUE(has_url_credentials("see http://u:p@h"));
  EXPECT_FALSE(has_url_credentials(redact_urls("see http://u:p@h and ftp://x:y@z")));
}

TEST(redact, a_url_glued_to_another) {
  EXPECT_EQ(redact_urls("http://u@h://x:y@z/"), "http://***@h://***@z/");
}

TEST(redact, idempotent) {
  const std::string once = redact_urls("a http://u:p@h:1/x b https://t@k c");
  EXPECT_EQ(redact_urls(once), once);
  EXPECT_EQ(once, "a http://***@h:1/x b https://***@k c");
}

}  // namespace
}  // namespace lanrelay
