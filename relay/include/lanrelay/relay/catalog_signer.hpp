#pragma once

// Signs the relay's catalog with the site key, for /-/catalog.signed: agents that pin the public
// key learn from it which bytes are genuine and may then fetch them from any peer.
//
// Thread safe: sign() only reads the key and the store (itself thread safe).

#include "lanrelay/common/config.hpp"
#include "lanrelay/common/site_key.hpp"
#include "lanrelay/common/store.hpp"
#include "lanrelay/relay/piece_lists.hpp"

#include <chrono>
#include <memory>
#include <span>
#include <string>

namespace lanrelay::relay {

class catalog_signer {
 public:
  static constexpr std::uint64_t kPieceBuildBudget = std::uint64_t{256} << 20;

  // The key named by trust.site_key, or <state_dir>/site.key when that file exists. A relay with
  // no key serves no signed catalog (nullptr, not an error); a configured key that cannot be
  // loaded is an error, with a message for the administrator.
  static result<std::unique_ptr<catalog_signer>> from_config(const relay_config& config);

  catalog_signer(site_key key, std::string relay_id, std::chrono::milliseconds lifetime);

  // Every item of `store` and every one of `extra` (mirrored files), issued now and valid for the
  // configured lifetime. With `pieces`, each store item names the digest of its piece list
  // (piece_lists.hpp); mirrored files have none. Lists not built yet are built for at most
  // kPieceBuildBudget bytes of items per call, so that a catalog request never waits for the
  // whole cache to be read (agents cut a source that sends nothing for a while); the other items
  // get their list in a later catalog.
  std::string sign(content_store& store, std::span<const item> extra = {},
                   piece_list_cache* pieces = nullptr) const;

  const lanrelay::public_key public_key() const { return key_.public_key(); }

 private:
  site_key key_;
  std::string relay_id_;
  std::chrono::milliseconds lifetime_;
};

}  // namespace lanrelay::relay
