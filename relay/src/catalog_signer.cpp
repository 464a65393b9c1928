#include "lanrelay/relay/catalog_signer.hpp"

#include <spdlog/spdlog.h>

#include <unistd.h>

#include <system_error>

namespace lanrelay::relay {
namespace {

std::string host_name() {
  char name[256] = {};
  if (::gethostname(name, sizeof name - 1) != 0 || name[0] == '\0') {
    return "lanrelay";
  }
  std::string out(name);
  for (char& c : out) {
    if (c < 0x20 || c > 0x7e) {
      c = '_';
    }
  }
  return out.substr(0, kMaxRelayIdLength);
}

}  // namespace

result<std::unique_ptr<catalog_signer>> catalog_signer::from_config(const relay_config& config) {
  const bool configured = !config.trust.site_key.empty();
  const auto path = configured ? config.trust.site_key : config.state_dir / kSiteKeyFileName;
  std::error_code ec;
  if (!configured && !std::filesystem::exists(path, ec)) {
    spdlog::info("event=site_key_missing path={} hint=\"/-/catalog.signed is off; lanrelay key "
                 "generate --out {}\"",
                 path.string(), path.string());
    return std::unique_ptr<catalog_signer>();
  }
  auto key = site_key::load(path);
  if (!key) {
    spdlog::error("event=site_key_error error=\"{}\"", key.error().message);
    return key.error().code;
  }
  spdlog::info("event=catalog_signing site_key={} public={}", path.string(),
               key->public_key().to_string());
  return std::make_unique<catalog_signer>(std::move(*key), host_name(),
                                          config.trust.catalog_lifetime);
}

catalog_signer::catalog_signer(site_key key, std::string relay_id,
                               std::chrono::milliseconds lifetime)
    : key_(std::move(key)), relay_id_(std::move(relay_id)), lifetime_(lifetime) {}

std::string catalog_signer::sign(content_store& store, std::span<const item> extra,
                                 piece_list_cache* pieces) const {
  catalog c;
  c.relay_id = relay_id_;
  c.issued_at = std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now());
  c.expires_at = c.issued_at + std::chrono::ceil<std::chrono::seconds>(lifetime_);
  std::uint64_t budget = kPieceBuildBudget;
  for (const item& it : store.list()) {
    c.entries.push_back({it.key.kind, it.key.name, it.key.version, it.size, it.sha256});
    if (pieces == nullptr) {
      continue;
    }
    auto list = pieces->cached(it.sha256);
    if (!list && it.size <= budget) {
      budget -= it.size;
      list = pieces->find(store, it.sha256);
    }
    if (list) {
      c.entries.back().pieces = list->digest;
    }
  }
  for (const item& it : extra) {
    c.entries.push_back({it.key.kind, it.key.name, it.key.version, it.size, it.sha256});
  }
  return sign_catalog(c, key_);
}

}  // namespace lanrelay::relay
