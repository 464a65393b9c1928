#include "lanrelay/relay/catalog_signer.hpp"

#include "lanrelay/relay/request_target.hpp"

#include <spdlog/spdlog.h>

#include <unistd.h>

#include <algorithm>
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
  return out.substr(0, max_relay_id_length);
}

}  // namespace

result<std::unique_ptr<catalog_signer>> catalog_signer::from_config(const relay_config& config) {
  const bool configured = !config.trust.site_key.empty();
  const auto path = configured ? config.trust.site_key : config.state_dir / site_key_file_name;
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
  auto signer = std::make_unique<catalog_signer>(std::move(*key), host_name(),
                                                 config.trust.catalog_lifetime);
  signer->set_item_origins(config.trust.item_origins);
  return signer;
}

catalog_signer::catalog_signer(site_key key, std::string relay_id,
                               std::chrono::milliseconds lifetime, clock_fn now)
    : key_(std::move(key)),
      relay_id_(std::move(relay_id)),
      lifetime_(lifetime),
      now_(std::move(now)) {}

void catalog_signer::set_tls_certificates(std::vector<sha256_digest> fingerprints) {
  std::vector<sha256_digest> unique;
  for (const auto& f : fingerprints) {
    if (std::find(unique.begin(), unique.end(), f) == unique.end() &&
        unique.size() < max_catalog_tls_fingerprints) {
      unique.push_back(f);
    }
  }
  std::lock_guard lock(mutex_);
  tls_ = std::move(unique);
}

void catalog_signer::set_item_origins(std::vector<std::string> origins) {
  std::vector<std::string> unique;
  for (auto& o : origins) {
    if (std::find(unique.begin(), unique.end(), o) == unique.end()) {
      unique.push_back(std::move(o));
    }
  }
  std::lock_guard lock(mutex_);
  origins_ = std::move(unique);
}

std::uint64_t catalog_signer::signatures() const {
  std::lock_guard lock(mutex_);
  return signatures_;
}

std::string catalog_signer::sign(content_store& store, std::span<const item> extra,
                                 piece_list_cache* pieces) const {
  std::vector<catalog_entry> entries;
  std::uint64_t budget = piece_build_budget;
  for (const item& it : store.list()) {
    entries.push_back({it.key.kind, it.key.name, it.key.version, it.size, it.sha256});
    if (pieces == nullptr) {
      continue;
    }
    auto list = pieces->cached(it.sha256);
    if (!list && it.size <= budget) {
      budget -= it.size;
      list = pieces->find(store, it.sha256);
    }
    if (list) {
      entries.back().pieces = list->digest;
    }
  }
  for (const item& it : extra) {
    entries.push_back({it.key.kind, it.key.name, it.key.version, it.size, it.sha256});
  }
  const std::size_t store_entries = entries.size() - extra.size();
  const auto now = now_();
  std::lock_guard lock(mutex_);
  std::vector<std::string> urls;
  std::size_t left_out = 0;
  for (const auto& origin : origins_) {
    for (std::size_t i = 0; i < store_entries; ++i) {
      const auto& e = entries[i];
      auto url = origin + cache_path(item_key{e.kind, e.name, e.version});
      if (urls.size() == max_catalog_urls || !is_valid_catalog_url(url)) {
        ++left_out;
        continue;
      }
      urls.push_back(std::move(url));
    }
  }
  if (signatures_ > 0 && entries == signed_entries_ && tls_ == signed_tls_ &&
      urls == signed_urls_ && now >= signed_at_ && now < signed_at_ + lifetime_ / 2) {
    return document_;
  }
  catalog c;
  c.relay_id = relay_id_;
  c.issued_at = std::chrono::floor<std::chrono::seconds>(now);
  c.expires_at = c.issued_at + std::chrono::ceil<std::chrono::seconds>(lifetime_);
  c.entries = entries;
  c.tls_certificates = tls_;
  c.urls = urls;
  if (left_out > 0) {
    spdlog::warn("event=catalog_urls_left_out count={} limit={} hint=\"fewer trust.item_origins, "
                 "or URLs over {} bytes\"",
                 left_out, max_catalog_urls, max_catalog_url_length);
  }
  document_ = sign_catalog(c, key_);
  signed_entries_ = std::move(entries);
  signed_tls_ = tls_;
  signed_urls_ = std::move(urls);
  signed_at_ = now;
  ++signatures_;
  return document_;
}

}  // namespace lanrelay::relay
