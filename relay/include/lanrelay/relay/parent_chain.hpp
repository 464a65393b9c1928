#pragma once

// Discovery chaining (docs/protocol.md "Chained discovery", docs/security.md): a relay that
// lacks an item an agent of its segment asks for asks its parent relays (discovery.parents) with
// the same unicast query an agent would send, answers its own agents with an offer for itself,
// and serves the item by pulling it from the parent once, verified, into its own store.
//
// - ask(): called by the responder for a query nothing in the store or the mirrors satisfies.
//   Starts one parent query for it (by unicast to every parent, a few rounds within
//   discovery.parent_query_window) unless one runs or ran lately. The agent's next round of the
//   same query finds the parent's offer remembered (find()) and gets an offer naming this relay.
//   Bounds: at most max_queries parent queries at once; a query no parent answered is not asked
//   again for negative_memory; at most max_remembered remembered answers.
// - The parent's offer is used only when it passes the agents' own rules: our transaction,
//   not our cookie, its URL naming the parent that sent it, the item asked for (kind, name, a
//   version satisfying the wanted one, the wanted SHA-256 when the query had one).
// - pull(): called by the HTTP handler for /cache/<kind>/<name>/<version> when the store lacks
//   it and a parent offered exactly that item. One download per item however many requests ask
//   (they all wait for it, each at most pull_wait); at most max_pulls downloads at once. The
//   bytes go into the store through an item_writer that publishes them only when their size and
//   SHA-256 equal the parent's offer (and so the agent's query, when it named a digest).
//
// Threads: every method may be called from any thread. The remembered offers are guarded by
// `mutex_` (never held across I/O); parent queries and pulls run on the chain's own strand.
// The chain must outlive every awaitable it returned and its own spawned work: the daemon owns
// it and stops the io_context before destroying it.

#include "lanrelay/content/store.hpp"
#include "lanrelay/relay/mirror.hpp"
#include "lanrelay/segment/discovery_codec.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/strand.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace lanrelay::relay {

// What a parent offered for a query: where the item is and which bytes it is.
struct parent_offer {
  item_key key;  // kind, name and the version the parent holds
  std::uint64_t size = 0;
  sha256_digest sha256{};
  std::string url;  // on the parent; names the parent that sent the offer
  boost::asio::ip::address parent;
};

struct parent_chain_counters {
  std::atomic<std::uint64_t> queries_sent{0};     // parent queries started
  std::atomic<std::uint64_t> offers_received{0};  // parent offers kept
  std::atomic<std::uint64_t> offers_refused{0};   // parent answers that broke a rule
  std::atomic<std::uint64_t> unanswered{0};       // parent queries no parent answered
  std::atomic<std::uint64_t> pulls{0};            // downloads from a parent started
  std::atomic<std::uint64_t> pulls_failed{0};     // ... that failed (transfer or digest)
  std::atomic<std::uint64_t> pull_bytes{0};       // bytes received from parents
  std::atomic<std::uint64_t> busy{0};             // asks or pulls refused by a bound
};

class parent_chain {
 public:
  struct settings {
    std::vector<boost::asio::ip::address> parents;
    std::uint16_t port = discovery::default_port;  // the parents' discovery port
    std::uint64_t cookie = 0;                      // the relay's own (ours in the query)
    std::chrono::milliseconds query_window{300};
    std::chrono::milliseconds pull_wait{60'000};
    std::uint32_t max_pulls = 4;
    std::uint32_t max_queries = 8;
    std::chrono::seconds negative_memory{30};
    std::chrono::seconds positive_memory{600};
    std::size_t max_remembered = 4096;
  };

  // `store` must outlive the chain.
  parent_chain(boost::asio::io_context& ioc, settings s, content_store& store);
  ~parent_chain();

  // The parent's offer remembered for this query, if one answered it lately.
  std::optional<parent_offer> find(const discovery::query& q) const;
  // Asks the parents about `q` in the background, unless that is already under way, was done
  // lately or a bound refuses it.
  void ask(const discovery::query& q);

  // The parent's offer for exactly this item (a remembered answer named it), if any.
  std::optional<parent_offer> offered(const item_key& key) const;
  // Brings the item `offered(key)` names into the store, or joins the download doing so.
  // served: the store holds it now; busy: max_pulls downloads run; failed: the download failed,
  // its bytes did not verify, or it outlasted pull_wait; refused: no parent offered it.
  boost::asio::awaitable<pull_outcome> pull(item_key key);

  const parent_chain_counters& counters() const noexcept { return counters_; }
  bool has_parents() const noexcept { return !settings_.parents.empty(); }

 private:
  struct pull_state;
  using clock = std::chrono::steady_clock;
  struct memory_entry {
    std::optional<parent_offer> offer;  // nullopt: no parent answered
    clock::time_point expires;
    bool in_flight = false;
  };

  boost::asio::awaitable<void> query_parents(discovery::query q, std::string memory_key);
  boost::asio::awaitable<pull_outcome> pull_and_wait(item_key key);
  boost::asio::awaitable<void> download(parent_offer offer, std::shared_ptr<pull_state> state);
  void forget_expired(clock::time_point now);  // mutex_ held

  settings settings_;
  content_store& store_;
  boost::asio::strand<boost::asio::io_context::executor_type> strand_;
  parent_chain_counters counters_;

  mutable std::mutex mutex_;
  std::map<std::string, memory_entry> memory_;  // by query (kind, name, wanted version, digest)
  std::map<std::string, parent_offer> by_item_;  // by cache_path of the offered item
  std::size_t queries_running_ = 0;

  std::map<std::string, std::shared_ptr<pull_state>> pulls_;  // strand; by cache_path
};

}  // namespace lanrelay::relay
