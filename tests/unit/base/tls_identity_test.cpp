#include "lanrelay/base/tls_identity.hpp"

#include <gtest/gtest.h>

#include <openssl/pem.h>
#include <openssl/x509.h>

#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace lanrelay {
namespace {

namespace fs = std::filesystem;

std::string read_text(const fs::path& file) {
  std::ifstream in(file);
  std::stringstream out;
  out << in.rdbuf();
  return out.str();
}

// The fingerprint computed independently: PEM -> X509 -> DER -> SHA-256.
sha256_digest fingerprint_of_pem(const std::string& pem) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  EXPECT_NE(cert, nullptr);
  unsigned char* der = nullptr;
  const int length = i2d_X509(cert, &der);
  const auto digest = sha256_of(std::as_bytes(std::span(der, static_cast<std::size_t>(length))));
  OPENSSL_free(der);
  X509_free(cert);
  return digest;
}

unsigned mode_of(const fs::path& file) {
  struct stat st {};
  EXPECT_EQ(::stat(file.c_str(), &st), 0);
  return st.st_mode & 0777;
}

class tls_identity_test : public testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/lanrelay-tls.XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path crt() const { return dir_ / "tls.crt"; }
  fs::path key() const { return dir_ / "tls.key"; }
  fs::path dir_;
};

TEST_F(tls_identity_test, generates_once_with_private_modes_then_loads_the_same_identity) {
  bool created = false;
  const auto first = tls_identity::load_or_generate(crt(), key(), "relay-a", &created);
  ASSERT_TRUE(first) << first.error().message;
  EXPECT_TRUE(created);
  EXPECT_EQ(mode_of(key()), 0600u);
  EXPECT_EQ(mode_of(crt()), 0644u);
  EXPECT_EQ(first->fingerprint(), fingerprint_of_pem(read_text(crt())));
  EXPECT_EQ(fingerprint_text(first->fingerprint()).size(), 64u);

  const auto second = tls_identity::load_or_generate(crt(), key(), "relay-a", &created);
  ASSERT_TRUE(second) << second.error().message;
  EXPECT_FALSE(created);
  EXPECT_EQ(second->fingerprint(), first->fingerprint());
}

TEST_F(tls_identity_test, the_generated_key_is_ecdsa_p256_and_the_certificate_self_signed) {
  const auto identity = tls_identity::load_or_generate(crt(), key(), "relay-a");
  ASSERT_TRUE(identity) << identity.error().message;
  const auto pem = read_text(crt());
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  ASSERT_NE(cert, nullptr);
  EVP_PKEY* pub = X509_get0_pubkey(cert);
  EXPECT_EQ(EVP_PKEY_get_base_id(pub), EVP_PKEY_EC);
  EXPECT_EQ(EVP_PKEY_get_bits(pub), 256);
  EXPECT_EQ(X509_verify(cert, pub), 1);
  EXPECT_EQ(X509_NAME_cmp(X509_get_subject_name(cert), X509_get_issuer_name(cert)), 0);
  X509_free(cert);
}

TEST_F(tls_identity_test, two_daemons_get_different_identities) {
  const auto a = tls_identity::load_or_generate(crt(), key(), "a");
  const auto b = tls_identity::load_or_generate(dir_ / "b.crt", dir_ / "b.key", "b");
  ASSERT_TRUE(a && b);
  EXPECT_NE(a->fingerprint(), b->fingerprint());
}

TEST_F(tls_identity_test, a_key_left_without_certificate_gets_a_certificate_for_that_key) {
  ASSERT_TRUE(tls_identity::load_or_generate(crt(), key(), "a"));
  const auto key_before = read_text(key());
  fs::remove(crt());
  bool created = false;
  const auto again = tls_identity::load_or_generate(crt(), key(), "a", &created);
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_TRUE(created);
  EXPECT_EQ(read_text(key()), key_before);
  EXPECT_EQ(again->fingerprint(), fingerprint_of_pem(read_text(crt())));
}

TEST_F(tls_identity_test, a_certificate_without_its_key_is_an_error_naming_both_files) {
  ASSERT_TRUE(tls_identity::load_or_generate(crt(), key(), "a"));
  fs::remove(key());
  const auto loaded = tls_identity::load_or_generate(crt(), key(), "a");
  ASSERT_FALSE(loaded);
  EXPECT_NE(loaded.error().message.find(crt().string()), std::string::npos);
  EXPECT_NE(loaded.error().message.find(key().string()), std::string::npos);
}

TEST_F(tls_identity_test, refuses_a_key_readable_by_others) {
  ASSERT_TRUE(tls_identity::load_or_generate(crt(), key(), "a"));
  fs::permissions(key(), fs::perms::others_read, fs::perm_options::add);
  const auto loaded = tls_identity::load(crt(), key());
  ASSERT_FALSE(loaded);
  EXPECT_EQ(loaded.error().code, trust_errc::insecure_key_file);
  EXPECT_NE(loaded.error().message.find("chmod 600"), std::string::npos);
}

TEST_F(tls_identity_test, refuses_a_key_that_does_not_match_the_certificate) {
  ASSERT_TRUE(tls_identity::load_or_generate(crt(), key(), "a"));
  ASSERT_TRUE(tls_identity::load_or_generate(dir_ / "b.crt", dir_ / "b.key", "b"));
  const auto loaded = tls_identity::load(crt(), dir_ / "b.key");
  ASSERT_FALSE(loaded);
  EXPECT_EQ(loaded.error().code, trust_errc::invalid_key_file);
  EXPECT_NE(loaded.error().message.find("does not belong"), std::string::npos);
}

TEST_F(tls_identity_test, refuses_garbage_and_missing_files_with_their_names) {
  std::ofstream(dir_ / "bad.crt") << "not a certificate\n";
  ASSERT_TRUE(tls_identity::load_or_generate(crt(), key(), "a"));
  const auto garbage = tls_identity::load(dir_ / "bad.crt", key());
  ASSERT_FALSE(garbage);
  EXPECT_NE(garbage.error().message.find("bad.crt"), std::string::npos);
  const auto missing = tls_identity::load(dir_ / "none.crt", key());
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message.find("none.crt"), std::string::npos);
}

TEST_F(tls_identity_test, does_not_follow_a_symbolic_link_planted_at_the_key_path) {
  fs::create_symlink(dir_ / "elsewhere", key());
  const auto loaded = tls_identity::load_or_generate(crt(), key(), "a");
  EXPECT_FALSE(loaded);
  EXPECT_FALSE(fs::exists(dir_ / "elsewhere"));
}

TEST_F(tls_identity_test, a_source_with_only_one_configured_file_is_an_error) {
  tls_identity_source source{.certificate = crt(), .state_dir = dir_};
  const auto loaded = source.load();
  ASSERT_FALSE(loaded);
  EXPECT_NE(loaded.error().message.find("go together"), std::string::npos);
}

TEST_F(tls_identity_test, the_server_context_reloads_a_replaced_pair_and_keeps_the_old_on_error) {
  tls_identity_source source{.state_dir = dir_, .stem = "relay-tls"};
  auto context = tls_server_context::create(source);
  ASSERT_TRUE(context) << context.error().message;
  const auto first = (*context)->current()->fingerprint;
  EXPECT_EQ(first, fingerprint_of_pem(read_text(dir_ / "relay-tls.crt")));

  // Nothing changed: the same identity.
  ASSERT_TRUE((*context)->reload());
  EXPECT_EQ((*context)->current()->fingerprint, first);

  // A renewed pair is picked up.
  fs::remove(dir_ / "relay-tls.crt");
  fs::remove(dir_ / "relay-tls.key");
  ASSERT_TRUE((*context)->reload());
  const auto second = (*context)->current()->fingerprint;
  EXPECT_NE(second, first);

  // A broken file: the running identity stays.
  fs::remove(dir_ / "relay-tls.key");
  std::ofstream(dir_ / "relay-tls.key") << "broken\n";
  fs::permissions(dir_ / "relay-tls.key", fs::perms::owner_read | fs::perms::owner_write,
                  fs::perm_options::replace);
  EXPECT_FALSE((*context)->reload());
  EXPECT_EQ((*context)->current()->fingerprint, second);
}

}  // namespace
}  // namespace lanrelay
