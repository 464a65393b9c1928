#pragma once

// An ActiveUpdate origin that only squid can reach, for the tests that go through a proxy
// (https_proxy_test, proxy_auth_test): a tree with one pattern and one engine under <root>/www,
// served by nginx that answers 403 to every client but squid's outgoing address.

#include "au_upstream.hpp"
#include "squid_fixture.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <string>

namespace lanrelay::test {

class proxied_origin {
 public:
  static inline const std::string pattern = "pattern/icrc/ioth1667900.zip";
  static inline const std::string engine = "engine/engv_nt386_v12500-1004.zip";

  explicit proxied_origin(const std::filesystem::path& root)
      : tree_(root / "www"), nginx_(root / "nginx", root / "www") {
    tree_.add(pattern, 300'000);
    tree_.add(engine, 200'000);
    tree_.publish(index());
    nginx_.allow_only(squid::outgoing_address);
  }

  void start() { ASSERT_NO_FATAL_FAILURE(nginx_.start()); }

  // http://127.0.0.1:<port>
  std::string base() const { return "http://127.0.0.1:" + std::to_string(nginx_.port()); }

  // The server.ini the tree publishes.
  std::string index() const {
    return "[Server]\r\nServer.1=http://au.example.com/activeupdate\r\n\r\n[PATTERN]\r\n"
           "P.48020000=" + pattern + ",1667900," + std::to_string(tree_.size(pattern)) +
           "\r\n\r\n[ENGINE]\r\nE.4=VSAPI32_NT_I386," + engine + ",12.500.1004," +
           std::to_string(tree_.size(engine)) + ",6.510.1002\r\n";
  }

  const au_tree& tree() const { return tree_; }

 private:
  au_tree tree_;
  nginx nginx_;
};

}  // namespace lanrelay::test
