#pragma once

// Signs the relay's catalog with the site key, for /-/catalog.signed: agents that pin the public
// key learn from it which bytes are genuine and may then fetch them from any peer, and which TLS
// certificates the relay's HTTPS listener presents (so that they can pin it).
//
// The endpoint is unauthenticated, so the signed document is cached: sign() returns the same
// bytes until the content (items, TLS fingerprints) changes or half the lifetime has passed,
// whichever comes first; an agent therefore always gets at least half a lifetime of validity.
//
// Thread safe: sign() and set_tls_certificates() may run on any thread; the cache is guarded by
// `mutex_` (a re-sign happens under it, so concurrent requests wait for one signature rather than
// each making their own).

#include "lanrelay/base/site_key.hpp"
#include "lanrelay/content/store.hpp"
#include "lanrelay/relay/config.hpp"
#include "lanrelay/relay/piece_lists.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <vector>
#include <memory>
#include <span>
#include <string>

namespace lanrelay::relay {

class catalog_signer {
 public:
  static constexpr std::uint64_t piece_build_budget = std::uint64_t{256} << 20;

  // The key named by trust.site_key, or <state_dir>/site.key when that file exists. A relay with
  // no key serves no signed catalog (nullptr, not an error); a configured key that cannot be
  // loaded is an error, with a message for the administrator.
  static result<std::unique_ptr<catalog_signer>> from_config(const relay_config& config);

  using clock_fn = std::function<std::chrono::system_clock::time_point()>;
  catalog_signer(site_key key, std::string relay_id, std::chrono::milliseconds lifetime,
                 clock_fn now = [] { return std::chrono::system_clock::now(); });

  // Every item of `store` and every one of `extra` (mirrored files) and the TLS fingerprints,
  // valid for the configured lifetime from when it was signed (see the top of this file). With
  // `pieces`, each store item names the digest of its piece list (piece_lists.hpp); mirrored
  // files have none. Lists not built yet are built for at most piece_build_budget bytes of items
  // per call, so that a catalog request never waits for the whole cache to be read (agents cut a
  // source that sends nothing for a while); the other items get their list in a later catalog,
  // which is then signed anew because its entries changed.
  std::string sign(content_store& store, std::span<const item> extra = {},
                   piece_list_cache* pieces = nullptr) const;

  // The fingerprints (SHA-256 of the DER certificate) the HTTPS listener presents; at most
  // max_catalog_tls_fingerprints, duplicates dropped. A reload that changes them re-signs at the
  // next request.
  void set_tls_certificates(std::vector<sha256_digest> fingerprints);

  // Origins (trust.item_origins) that serve the store's items at the same paths: the catalog
  // names each store item's URL <origin>/cache/<kind>/<name>/<version> on each, in this order,
  // up to max_catalog_urls URLs (further ones are left out with a warning). Mirrored files are
  // named on none. Duplicates are dropped.
  void set_item_origins(std::vector<std::string> origins);

  const lanrelay::public_key public_key() const { return key_.public_key(); }

  // How many catalogs were signed so far (tests, and /-/status some day).
  std::uint64_t signatures() const;

 private:
  site_key key_;
  std::string relay_id_;
  std::chrono::milliseconds lifetime_;
  clock_fn now_;

  mutable std::mutex mutex_;
  // Guarded by mutex_.
  std::vector<sha256_digest> tls_;
  std::vector<std::string> origins_;
  mutable std::vector<catalog_entry> signed_entries_;
  mutable std::vector<sha256_digest> signed_tls_;
  mutable std::vector<std::string> signed_urls_;
  mutable std::chrono::system_clock::time_point signed_at_{};
  mutable std::string document_;
  mutable std::uint64_t signatures_ = 0;
};

}  // namespace lanrelay::relay
