// catalog_signer: the TLS fingerprints go into the signed catalog, and the signed document is
// cached until its content changes or half its lifetime has passed.

#include "lanrelay/relay/catalog_signer.hpp"

#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>

namespace lanrelay::relay {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

class catalog_signer_test : public testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/lanrelay-signer.XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    dir_ = pattern;
    auto store = content_store::open({dir_ / "cache", 0});
    ASSERT_TRUE(store) << store.error().message();
    store_ = std::move(*store);
    auto key = site_key::generate();
    ASSERT_TRUE(key);
    public_ = key->public_key();
    signer_ = std::make_unique<catalog_signer>(std::move(*key), "relay-1", 1h,
                                               [this] { return now_; });
  }
  void TearDown() override {
    signer_.reset();
    store_.reset();
    fs::remove_all(dir_);
  }

  void add(item_key key, std::string_view bytes) {
    auto writer = store_->begin_add(std::move(key));
    ASSERT_TRUE(writer);
    ASSERT_TRUE(writer->write(std::as_bytes(std::span(bytes.data(), bytes.size()))));
    ASSERT_TRUE(writer->commit(bytes.size(), std::nullopt));
  }

  catalog verified(const std::string& document) {
    auto c = verify_catalog(document, public_, now_);
    EXPECT_TRUE(c) << c.error().message();
    return c ? *c : catalog{};
  }

  fs::path dir_;
  std::unique_ptr<content_store> store_;
  public_key public_;
  std::chrono::system_clock::time_point now_ = std::chrono::system_clock::now();
  std::unique_ptr<catalog_signer> signer_;
};

sha256_digest digest_of(std::string_view text) {
  return sha256_of(std::as_bytes(std::span(text.data(), text.size())));
}

TEST_F(catalog_signer_test, publishes_the_tls_fingerprints_signed) {
  const auto a = digest_of("certificate a");
  const auto b = digest_of("certificate b");
  signer_->set_tls_certificates({a, b, a});
  const auto c = verified(signer_->sign(*store_));
  EXPECT_EQ(c.tls_certificates, (std::vector<sha256_digest>{a, b}));
  EXPECT_EQ(c.relay_id, "relay-1");
}

TEST_F(catalog_signer_test, names_each_cached_item_on_each_other_origin) {
  add({item_kind::pattern, "vsapi", "1667900"}, "pattern bytes");
  EXPECT_TRUE(verified(signer_->sign(*store_)).urls.empty());
  signer_->set_item_origins({"http://relay-b.corp:4127", "http://10.0.0.9", "http://10.0.0.9"});
  const item mirrored{{item_kind::file, "mirrored", "1"}, 3, digest_of("abc")};
  const auto c = verified(signer_->sign(*store_, std::span(&mirrored, 1)));
  // Mirrored files are served under /activeupdate/ only: no URL names them.
  EXPECT_EQ(c.urls, (std::vector<std::string>{"http://relay-b.corp:4127/cache/pattern/vsapi/1667900",
                                              "http://10.0.0.9/cache/pattern/vsapi/1667900"}));
  EXPECT_EQ(signer_->signatures(), 2u);
  signer_->set_item_origins({});
  EXPECT_TRUE(verified(signer_->sign(*store_)).urls.empty());
}

TEST_F(catalog_signer_test, serves_the_cached_document_while_nothing_changes) {
  add({item_kind::pattern, "vsapi", "16.679.00"}, "pattern bytes");
  const auto first = signer_->sign(*store_);
  now_ += 10min;
  EXPECT_EQ(signer_->sign(*store_), first);
  now_ += 19min;
  EXPECT_EQ(signer_->sign(*store_), first);
  EXPECT_EQ(signer_->signatures(), 1u);
}

TEST_F(catalog_signer_test, re_signs_after_half_the_lifetime) {
  const auto first = signer_->sign(*store_);
  now_ += 30min;
  const auto second = signer_->sign(*store_);
  EXPECT_NE(second, first);
  EXPECT_EQ(signer_->signatures(), 2u);
  EXPECT_EQ(verified(second).issued_at, std::chrono::floor<std::chrono::seconds>(now_));
}

TEST_F(catalog_signer_test, re_signs_when_the_items_or_the_certificates_change) {
  const auto empty = signer_->sign(*store_);
  add({item_kind::pattern, "vsapi", "16.679.00"}, "pattern bytes");
  const auto with_item = signer_->sign(*store_);
  EXPECT_NE(with_item, empty);
  EXPECT_EQ(verified(with_item).entries.size(), 1u);

  signer_->set_tls_certificates({digest_of("renewed")});
  const auto with_tls = signer_->sign(*store_);
  EXPECT_NE(with_tls, with_item);
  EXPECT_EQ(verified(with_tls).tls_certificates.size(), 1u);
  EXPECT_EQ(signer_->signatures(), 3u);

  // Mirrored items count as content too.
  item mirrored;
  mirrored.key = {item_kind::file, "server.ini", "1"};
  mirrored.size = 5;
  mirrored.sha256 = digest_of("hello");
  EXPECT_NE(signer_->sign(*store_, std::span(&mirrored, 1)), with_tls);
}

TEST_F(catalog_signer_test, a_clock_set_back_re_signs) {
  const auto first = signer_->sign(*store_);
  now_ -= 1h;
  EXPECT_NE(signer_->sign(*store_), first);
}

}  // namespace
}  // namespace lanrelay::relay
