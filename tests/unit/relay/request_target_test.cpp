#include "lanrelay/relay/request_target.hpp"

#include <gtest/gtest.h>

#include <string>

namespace lanrelay::relay {
namespace {

struct target_case {
  std::string target;
  target_verdict verdict;
};

class relay_target_rejects : public testing::TestWithParam<target_case> {};

TEST_P(relay_target_rejects, traversal_and_malformed_targets) {
  const auto& c = GetParam();
  const parsed_target parsed = parse_request_target(c.target);
  EXPECT_EQ(parsed.verdict, c.verdict) << "target: " << c.target << " reason: " << parsed.reason;
  EXPECT_FALSE(parsed.reason.empty());
}

using namespace std::string_literals;

INSTANTIATE_TEST_SUITE_P(
    traversal, relay_target_rejects,
    testing::Values(
        target_case{"/cache/file/../../etc/passwd", target_verdict::bad_request},
        target_case{"/cache/file/x/..", target_verdict::bad_request},
        target_case{"/activeupdate/vendor/../x", target_verdict::bad_request},
        target_case{"/activeupdate/vendor/a/%2e%2e/b", target_verdict::bad_request},
        target_case{"/activeupdate/vendor/a%2fb", target_verdict::bad_request},
        target_case{"/activeupdate/vendor/a%5cb", target_verdict::bad_request},
        target_case{"/activeupdate/vendor/c:/x", target_verdict::bad_request},
        target_case{"/activeupdate/vendor/a%3ab", target_verdict::bad_request},
        target_case{"/activeupdate/vendor/a%25b", target_verdict::bad_request},
        target_case{"/activeupdate/vendor/a//b", target_verdict::bad_request},
        target_case{"/activeupdate/vendor/a/", target_verdict::bad_request},
        target_case{"/activeupdate/ven*dor/x", target_verdict::bad_request},
        target_case{"/activeupdate/vendor", target_verdict::not_found},
        target_case{"/-/mirror/sync/a/b", target_verdict::not_found},
        target_case{"/-/mirror/sync/..", target_verdict::bad_request},
        target_case{"/cache/file/../x", target_verdict::bad_request},
        target_case{"/../cache/file/x/1", target_verdict::bad_request},
        target_case{"/cache/file/./1", target_verdict::bad_request},
        target_case{"/cache/./file/x/1", target_verdict::bad_request},
        target_case{"/cache/file/x..y/1", target_verdict::bad_request},
        target_case{"/cache/file/x/1..2", target_verdict::bad_request},
        target_case{"/cache/file/%2e%2e/x", target_verdict::bad_request},
        target_case{"/cache/file/%2E%2E/x", target_verdict::bad_request},
        target_case{"/cache/file/.%2e/x", target_verdict::bad_request},
        target_case{"/cache/file/%2e./x", target_verdict::bad_request},
        target_case{"/cache/file/a%2eb/1", target_verdict::bad_request},
        target_case{"/cache/file/x%2f..%2f..%2fetc/1", target_verdict::bad_request},
        target_case{"/cache/file/x%2F1/2", target_verdict::bad_request},
        target_case{"/cache/file/x%5c..%5c/1", target_verdict::bad_request},
        target_case{"/cache/file/x%5C1/2", target_verdict::bad_request},
        target_case{"/cache/file/x\\..\\y/1", target_verdict::bad_request},
        target_case{"/cache/file/x\\y/1", target_verdict::bad_request},
        target_case{"/cache/file/x%00/1", target_verdict::bad_request},
        target_case{"/cache/file/x/1%00.txt", target_verdict::bad_request},
        target_case{"/cache/file/x\0y/1"s, target_verdict::bad_request},
        target_case{"/cache/file/x/1?q=%00", target_verdict::bad_request},
        target_case{"/cache/file/%252e%252e/1", target_verdict::bad_request},  // escaped '%'
        target_case{"/cache/file/x%2/1", target_verdict::bad_request},
        target_case{"/cache/file/x%/1", target_verdict::bad_request},
        target_case{"/cache/file/x/1%", target_verdict::bad_request},
        target_case{"/cache/file/x/1%4", target_verdict::bad_request},
        target_case{"/cache/file/x%zz/1", target_verdict::bad_request},
        target_case{"/cache/file/x%c0%ae/1", target_verdict::bad_request},  // overlong '.'
        target_case{"/cache/file/%e2%80%a4/1", target_verdict::bad_request},
        target_case{"/cache/file/x%20y/1", target_verdict::bad_request},
        target_case{"/cache/file/x y/1", target_verdict::bad_request},
        target_case{"/cache/file/x\ty/1", target_verdict::bad_request},
        target_case{"/cache/file/x\xc3\xa9/1", target_verdict::bad_request},
        target_case{"/cache//file/x/1", target_verdict::bad_request},
        target_case{"/cache/file//x/1", target_verdict::bad_request},
        target_case{"/cache/file/x/1/", target_verdict::bad_request},
        target_case{"//etc/passwd", target_verdict::bad_request},
        target_case{"http://evil/cache/file/x/1", target_verdict::bad_request},
        target_case{"HTTP://127.0.0.1/cache/file/x/1", target_verdict::bad_request},
        target_case{"127.0.0.1:4127", target_verdict::bad_request},
        target_case{"*", target_verdict::bad_request},
        target_case{"", target_verdict::bad_request},
        target_case{"cache/file/x/1", target_verdict::bad_request},
        target_case{"\\cache\\file\\x\\1", target_verdict::bad_request},
        target_case{"/cache/file/x/1#frag", target_verdict::bad_request},
        target_case{"/cache/file/.hidden/1", target_verdict::bad_request},
        target_case{"/cache/file/-x/1", target_verdict::bad_request},
        target_case{"/cache/file/x/-1", target_verdict::bad_request},
        target_case{"/cache/file/x:y/1", target_verdict::bad_request},
        target_case{"/cache/installer/agent/1.x", target_verdict::bad_request},
        target_case{"/cache/installer/agent/1.2.3.4.5", target_verdict::bad_request},
        target_case{"/cache/pattern/p/not-a-number", target_verdict::bad_request},
        target_case{"/cache/file/" + std::string(129, 'a') + "/1", target_verdict::bad_request},
        target_case{"/" + std::string(20, 'a') + std::string(20, '/'), target_verdict::bad_request},
        target_case{"/a/b/c/d/e/f/g/h/i/j", target_verdict::not_found},
        // Well-formed but naming nothing.
        target_case{"/", target_verdict::not_found},
        target_case{"/index.html", target_verdict::not_found},
        target_case{"/etc/passwd", target_verdict::not_found},
        target_case{"/cache", target_verdict::not_found},
        target_case{"/cache/file", target_verdict::not_found},
        target_case{"/cache/file/x", target_verdict::not_found},
        target_case{"/cache/file/x/1/extra", target_verdict::not_found},
        target_case{"/cache/secret/x/1", target_verdict::not_found},
        target_case{"/cache/FILE/x/1", target_verdict::not_found},
        target_case{"/CACHE/file/x/1", target_verdict::not_found},
        target_case{"/-/nothing", target_verdict::not_found},
        target_case{"/-", target_verdict::not_found},
        target_case{"/-/healthz/x", target_verdict::not_found}));

TEST(relay_target, cache_item) {
  const parsed_target parsed = parse_request_target("/cache/installer/agent-win64/14.0.1");
  ASSERT_EQ(parsed.verdict, target_verdict::ok);
  EXPECT_EQ(parsed.resource, resource_kind::cache_item);
  EXPECT_EQ(parsed.key, (item_key{item_kind::installer, "agent-win64", "14.0.1"}));
}

TEST(relay_target, pattern_versions_are_canonicalised) {
  const parsed_target display = parse_request_target("/cache/pattern/vsapi/16.679.00");
  ASSERT_EQ(display.verdict, target_verdict::ok);
  EXPECT_EQ(display.key.version, "1667900");
  const parsed_target integer = parse_request_target("/cache/pattern/vsapi/1667900");
  ASSERT_EQ(integer.verdict, target_verdict::ok);
  EXPECT_EQ(integer.key, display.key);
}

TEST(relay_target, escapes_of_name_characters_are_decoded) {
  const parsed_target parsed = parse_request_target("/cache/file/%41gent%2b%5F/v1%2D2");
  ASSERT_EQ(parsed.verdict, target_verdict::ok) << parsed.reason;
  EXPECT_EQ(parsed.key, (item_key{item_kind::file, "Agent+_", "v1-2"}));
}

TEST(relay_target, query_is_ignored) {
  const parsed_target parsed = parse_request_target("/cache/file/x/1?nocache=123&a=b/c");
  ASSERT_EQ(parsed.verdict, target_verdict::ok);
  EXPECT_EQ(parsed.key, (item_key{item_kind::file, "x", "1"}));
  EXPECT_EQ(parse_request_target("/-/healthz?").resource, resource_kind::healthz);
}

TEST(relay_target, service_endpoints) {
  EXPECT_EQ(parse_request_target("/-/healthz").resource, resource_kind::healthz);
  EXPECT_EQ(parse_request_target("/-/catalog").resource, resource_kind::catalog);
  EXPECT_EQ(parse_request_target("/-/stats").resource, resource_kind::stats);
  EXPECT_EQ(parse_request_target("/-/stats").verdict, target_verdict::ok);
}

TEST(relay_target, mirror_files_keep_their_activeupdate_path) {
  auto t = parse_request_target("/activeupdate/vendor/pattern/lpt$vpn.679");
  ASSERT_EQ(t.verdict, target_verdict::ok) << t.reason;
  EXPECT_EQ(t.resource, resource_kind::mirror_file);
  EXPECT_EQ(t.mirror_source, "vendor");
  EXPECT_EQ(t.mirror_path, "pattern/lpt$vpn.679");
  t = parse_request_target("/activeupdate/vendor/pattern/lpt%24vpn.679?x=1");
  ASSERT_EQ(t.verdict, target_verdict::ok) << t.reason;
  EXPECT_EQ(t.mirror_path, "pattern/lpt$vpn.679");
  EXPECT_EQ(mirror_path("vendor", "server.ini"), "/activeupdate/vendor/server.ini");
}

TEST(relay_target, mirror_admin_endpoints) {
  EXPECT_EQ(parse_request_target("/-/mirror").resource, resource_kind::mirror_status);
  auto all = parse_request_target("/-/mirror/sync");
  EXPECT_EQ(all.resource, resource_kind::mirror_sync);
  EXPECT_TRUE(all.mirror_source.empty());
  EXPECT_EQ(parse_request_target("/-/mirror/sync/vendor").mirror_source, "vendor");
}

TEST(relay_target, cache_path_round_trips) {
  const item_key key{item_kind::pattern, "vsapi", "1667900"};
  EXPECT_EQ(cache_path(key), "/cache/pattern/vsapi/1667900");
  EXPECT_EQ(parse_request_target(cache_path(key)).key, key);
}

// Every single byte in every position of a valid target either leaves it valid for exactly the
// intended item or is refused; nothing else is ever produced.
TEST(relay_target, single_byte_mutations_never_escape) {
  const std::string base = "/cache/file/name/1";
  for (std::size_t pos = 0; pos <= base.size(); ++pos) {
    for (int b = 0; b < 256; ++b) {
      std::string target = base;
      target.insert(pos, 1, static_cast<char>(b));
      const parsed_target parsed = parse_request_target(target);
      if (parsed.verdict != target_verdict::ok || parsed.resource != resource_kind::cache_item) {
        continue;
      }
      for (const std::string* part : {&parsed.key.name, &parsed.key.version}) {
        EXPECT_TRUE(is_valid_name(*part)) << target;
        EXPECT_EQ(part->find(".."), std::string::npos) << target;
        EXPECT_EQ(part->find('/'), std::string::npos) << target;
      }
    }
  }
}

}  // namespace
}  // namespace lanrelay::relay
