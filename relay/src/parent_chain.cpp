#include "lanrelay/relay/parent_chain.hpp"

#include "lanrelay/base/log.hpp"
#include "lanrelay/base/text_format.hpp"
#include "lanrelay/relay/request_target.hpp"
#include "lanrelay/segment/offer_rules.hpp"
#include "lanrelay/segment/query_rounds.hpp"
#include "lanrelay/upstream/http_client.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/url/parse.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <random>

namespace lanrelay::relay {

namespace net = boost::asio;
using namespace boost::asio::experimental::awaitable_operators;

namespace {

constexpr auto use_tuple = net::as_tuple(net::use_awaitable);

std::string memory_key(const discovery::query& q) {
  std::string key = std::to_string(static_cast<int>(q.kind)) + "/" + q.name + "/" + q.version;
  if (q.sha256) {
    key += "/" + to_hex(*q.sha256);
  }
  return key;
}

std::uint64_t random_u64() {
  static thread_local std::mt19937_64 engine{std::random_device{}()};
  return engine();
}

}  // namespace

// One download from a parent and the requests waiting for it. On the chain's strand.
struct parent_chain::pull_state {
  explicit pull_state(net::strand<net::io_context::executor_type> ex) : done(ex) {
    done.expires_at(net::steady_timer::time_point::max());
  }
  net::steady_timer done;  // its wait ends (cancelled) when the download is over
  bool finished = false;
  bool ok = false;
};

parent_chain::parent_chain(net::io_context& ioc, settings s, content_store& store)
    : settings_(std::move(s)), store_(store), strand_(net::make_strand(ioc)) {}

parent_chain::~parent_chain() = default;

void parent_chain::forget_expired(clock::time_point now) {
  std::erase_if(memory_, [&](const auto& entry) {
    return !entry.second.in_flight && entry.second.expires <= now;
  });
  std::erase_if(by_item_, [&](const auto& entry) {
    // An item stays pullable while some remembered answer names it.
    for (const auto& [key, m] : memory_) {
      if (m.offer && m.offer->url == entry.second.url) {
        return false;
      }
    }
    return true;
  });
}

std::optional<parent_offer> parent_chain::find(const discovery::query& q) const {
  std::lock_guard lock(mutex_);
  const auto it = memory_.find(memory_key(q));
  if (it == memory_.end() || !it->second.offer || it->second.expires <= clock::now()) {
    return std::nullopt;
  }
  return it->second.offer;
}

std::optional<parent_offer> parent_chain::offered(const item_key& key) const {
  std::lock_guard lock(mutex_);
  const auto it = by_item_.find(cache_path(key));
  if (it == by_item_.end()) {
    return std::nullopt;
  }
  return it->second;
}

void parent_chain::ask(const discovery::query& q) {
  if (settings_.parents.empty()) {
    return;
  }
  auto key = memory_key(q);
  {
    std::lock_guard lock(mutex_);
    const auto now = clock::now();
    if (auto it = memory_.find(key);
        it != memory_.end() && (it->second.in_flight || it->second.expires > now)) {
      return;
    }
    if (queries_running_ >= settings_.max_queries) {
      ++counters_.busy;
      return;
    }
    if (memory_.size() >= settings_.max_remembered) {
      forget_expired(now);
      if (memory_.size() >= settings_.max_remembered) {
        ++counters_.busy;
        return;
      }
    }
    memory_[key] = memory_entry{std::nullopt, now, true};
    ++queries_running_;
  }
  ++counters_.queries_sent;
  net::co_spawn(strand_, query_parents(q, std::move(key)), log_failure("parent query"));
}

net::awaitable<void> parent_chain::query_parents(discovery::query wanted, std::string key) {
  discovery::query q = wanted;
  q.transaction_id = random_u64();
  q.sender_cookie = settings_.cookie;
  std::optional<parent_offer> found;
  std::size_t refused = 0;
  const auto datagram = discovery::encode(q);
  if (datagram) {
    auto destinations = query_destinations(settings_.parents, settings_.port, true, "");
    const auto on_reply = [&](std::span<const std::byte> bytes, const received_datagram& got) {
      auto o = discovery::decode_offer(bytes);
      if (got.truncated || !o || o->transaction_id != q.transaction_id ||
          o->sender_cookie == q.sender_cookie) {
        return;  // not an answer to this query
      }
      const auto sender = discovery::without_zone(got.source.address());
      const bool from_parent = std::find(settings_.parents.begin(), settings_.parents.end(),
                                         sender) != settings_.parents.end();
      if (!from_parent || !discovery::url_names(o->url, sender) ||
          !discovery::answers(*o, q.kind, q.name, q.version, q.sha256)) {
        ++refused;
        return;
      }
      if (!found) {
        found = parent_offer{item_key{o->kind, o->name, o->version}, o->size, o->sha256, o->url,
                             sender};
      }
    };
    const query_round_options rounds{.window = settings_.query_window,
                                     .sends = 3,
                                     .ipv6 = true,
                                     .max_datagram = discovery::max_datagram,
                                     .what = "parent discovery"};
    const std::span<const std::byte> bytes(*datagram);
    query_reply_fn reply = on_reply;
    std::function<bool()> done = [&] { return found.has_value(); };
    auto running = query_rounds(bytes, std::move(destinations), rounds, std::move(reply),
                                std::move(done));
    co_await std::move(running);
  }
  counters_.offers_refused += refused;
  if (found) {
    ++counters_.offers_received;
    spdlog::info("event=parent_offer kind={} name={} version={} parent={} url={} size={}",
                 to_string(found->key.kind), found->key.name, found->key.version,
                 found->parent.to_string(), found->url, found->size);
  } else {
    ++counters_.unanswered;
    spdlog::debug("event=parent_unanswered kind={} name={} version={} refused={}",
                  to_string(q.kind), q.name, q.version, refused);
  }
  std::lock_guard lock(mutex_);
  --queries_running_;
  auto& entry = memory_[key];
  entry.in_flight = false;
  entry.offer = found;
  entry.expires = clock::now() +
                  (found ? settings_.positive_memory
                         : std::chrono::duration_cast<clock::duration>(settings_.negative_memory));
  if (found) {
    by_item_[cache_path(found->key)] = *found;
  }
}

net::awaitable<pull_outcome> parent_chain::pull(item_key key) {
  co_return co_await net::co_spawn(strand_, pull_and_wait(std::move(key)), net::use_awaitable);
}

net::awaitable<pull_outcome> parent_chain::pull_and_wait(item_key key) {
  // A client that hangs up cancels this coroutine: an answer, not an exception. The download
  // goes on for the others (and for the next agent).
  co_await net::this_coro::throw_if_cancelled(false);
  const auto path = cache_path(key);
  std::shared_ptr<pull_state> state;
  if (auto it = pulls_.find(path); it != pulls_.end()) {
    state = it->second;
  } else {
    if (store_.find(key)) {
      co_return pull_outcome{pull_verdict::served, {}, {}};
    }
    auto offer = offered(key);
    if (!offer) {
      co_return pull_outcome{pull_verdict::refused, "not cached here", {}};
    }
    if (pulls_.size() >= settings_.max_pulls) {
      ++counters_.busy;
      co_return pull_outcome{pull_verdict::busy,
                             "the relay is fetching other items from its parent; retry later",
                             {}};
    }
    state = std::make_shared<pull_state>(strand_);
    pulls_.emplace(path, state);
    ++counters_.pulls;
    net::co_spawn(strand_, download(std::move(*offer), state), log_failure("parent pull"));
  }
  net::steady_timer deadline(strand_, settings_.pull_wait);
  const bool gone_already =
      (co_await net::this_coro::cancellation_state).cancelled() != net::cancellation_type::none;
  if (!gone_already && !state->finished) {
    co_await (state->done.async_wait(use_tuple) || deadline.async_wait(use_tuple));
  }
  if (state->finished) {
    co_return state->ok ? pull_outcome{pull_verdict::served, {}, {}}
                        : pull_outcome{pull_verdict::failed,
                                       "the relay could not fetch this item from its parent; "
                                       "retry later",
                                       {}};
  }
  co_return pull_outcome{pull_verdict::failed,
                         "the relay is still fetching this item from its parent; retry later", {}};
}

net::awaitable<void> parent_chain::download(parent_offer offer, std::shared_ptr<pull_state> state) {
  const auto path = cache_path(offer.key);
  bool ok = false;
  std::string error;
  auto writer = store_.begin_add(offer.key);
  if (!writer) {
    error = "cannot write to the cache: " + writer.error().message();
  } else {
    auto url = boost::urls::parse_uri(offer.url);
    fetch_request request;
    request.url = boost::urls::url(*url);
    request.max_bytes = offer.size;
    body_sink sink = [&](std::span<const std::byte> data) -> result<void> {
      counters_.pull_bytes.fetch_add(data.size(), std::memory_order_relaxed);
      return writer->write(data);
    };
    auto fetched = co_await http_fetch(request, std::move(sink));
    if (!fetched) {
      error = describe_fetch_error(request, fetched.error());
    } else if (fetched->status != 200) {
      error = "the parent answered " + std::to_string(fetched->status);
    } else {
      // Published only when size and SHA-256 are the offer's: nothing unverified is kept.
      auto committed = writer->commit(offer.size, offer.sha256);
      if (committed) {
        ok = true;
      } else {
        error = "the bytes do not match the parent's offer: " + committed.error().message();
      }
    }
  }
  if (ok) {
    spdlog::info("event=parent_pull_done item={} parent={} bytes={}", path,
                 offer.parent.to_string(), offer.size);
  } else {
    ++counters_.pulls_failed;
    spdlog::warn("event=parent_pull_failed item={} parent={} error=\"{}\"", path,
                 offer.parent.to_string(), error);
  }
  state->finished = true;
  state->ok = ok;
  state->done.cancel();
  pulls_.erase(path);
}

}  // namespace lanrelay::relay
