#include "lanrelay/agent/fetch.hpp"

#include "lanrelay/agent/catalog_memory.hpp"
#include "lanrelay/agent/fallback_memory.hpp"
#include "lanrelay/agent/offer_route.hpp"
#include "lanrelay/agent/piece_scheduler.hpp"
#include "lanrelay/agent/segment_memory.hpp"
#include "lanrelay/agent/discovery_sources.hpp"
#include "lanrelay/base/file_io.hpp"
#include "lanrelay/base/machine_cookie.hpp"
#include "lanrelay/content/partial_items.hpp"
#include "lanrelay/content/piece_list.hpp"
#include "lanrelay/content/store.hpp"
#include "lanrelay/segment/interfaces.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/url/parse.hpp>
#include <spdlog/spdlog.h>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <memory>
#include <random>
#include <set>

namespace lanrelay::agent {

[[noreturn]] void throw_exception_from_error(const fetch_failure& e,
                                             const boost::source_location&) {
  throw std::runtime_error(e.message);
}

namespace {

namespace net = boost::asio;
using namespace net::experimental::awaitable_operators;
using clock = std::chrono::steady_clock;

// Largest signed catalog we read from a relay (the format's own limit).
constexpr std::uint64_t max_catalog_bytes = max_catalog_document_size;

// The file the bytes are written to until they are verified; renamed over the output at the end.
// It is created anew (O_EXCL) and never through a symbolic link (O_NOFOLLOW): a link planted at
// its name by another user must not make a root fetch write somewhere else. A regular file left
// by an interrupted run is removed first.
class partial_file {
 public:
  explicit partial_file(const std::filesystem::path& output)
      : path_(output.string() + ".lanrelay-part") {}
  ~partial_file() {
    if (fd_ >= 0) {
      ::close(fd_);
      std::error_code ignored;
      std::filesystem::remove(path_, ignored);
    }
  }

  const std::filesystem::path& path() const noexcept { return path_; }

  result<void> open() {
    std::error_code ec;
    const auto status = std::filesystem::symlink_status(path_, ec);
    if (!ec && std::filesystem::is_symlink(status)) {
      return make_error_code(boost::system::errc::too_many_symbolic_link_levels);
    }
    if (!ec && std::filesystem::is_regular_file(status)) {
      std::filesystem::remove(path_, ec);  // left by an interrupted run
    }
    fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd_ < 0) {
      return boost::system::error_code(errno, boost::system::system_category());
    }
    return {};
  }

  result<void> write(std::span<const std::byte> data) {
    if (auto written = write_all(fd_, data); !written) {
      return written;
    }
    if (whole_hash_valid_) {
      hasher_.update(data);
    }
    size_ += data.size();
    return {};
  }

  // Keeps the first `size` bytes and forgets the rest: after a bad piece, when another source
  // takes over, or when a server ignored our Range.
  void truncate(std::uint64_t size) {
    if (size >= size_ && size != 0) {
      return;
    }
    ::ftruncate(fd_, static_cast<off_t>(size));
    ::lseek(fd_, static_cast<off_t>(size), SEEK_SET);
    size_ = size;
    // A running hash cannot be rewound: from zero it starts again, else digest() reads the file.
    hasher_ = sha256_hasher();
    whole_hash_valid_ = size == 0;
  }

  std::uint64_t size() const noexcept { return size_; }

  result<sha256_digest> digest() {
    if (whole_hash_valid_) {
      return hasher_.finish();
    }
    return sha256_of_file(path_);
  }

  // fsync and rename over `output`; the partial file is gone afterwards.
  result<void> publish(const std::filesystem::path& output) {
    if (::fsync(fd_) != 0) {
      return boost::system::error_code(errno, boost::system::system_category());
    }
    ::close(fd_);
    fd_ = -1;
    std::error_code ec;
    std::filesystem::rename(path_, output, ec);
    if (ec) {
      std::filesystem::remove(path_, ec);
      return boost::system::error_code(errno, boost::system::system_category());
    }
    return {};
  }

 private:
  std::filesystem::path path_;
  int fd_ = -1;
  sha256_hasher hasher_;
  bool whole_hash_valid_ = true;  // hasher_ has seen every byte from offset 0 on
  std::uint64_t size_ = 0;
};

// Names the hop that failed (the proxy, a tunnel, TLS, the holder) and its address.
std::string describe_error(const fetch_request& request, const boost::system::error_code& ec) {
  const auto text = describe_fetch_error(request, ec);
  return is_timeout(ec) ? "timeout (" + text + ")" : text;
}

// Where an attempt goes.
struct source {
  std::string url;
  // Connect to this address rather than resolving the URL's host: the sender of the offer, with
  // the zone of the interface it arrived on (an IPv6 link-local URL carries none).
  std::optional<net::ip::address> address;
  std::optional<proxy_settings> proxy;
  std::optional<tls_options> tls;  // pinned HTTPS to a relay; else fetch_options::tls
  bool bounded = true;             // attempt_limits apply
};

// http_fetch's answer, or why the attempt was cut (too slow, past its deadline).
struct bounded_response {
  result<fetch_response> response;
  std::string cut;  // empty unless the watchdog ended the attempt
};

std::string seconds_text(clock::duration d) {
  return fmt::format("{:.1f}", std::chrono::duration<double>(d).count());
}

class fetch_job {
 public:
  explicit fetch_job(const fetch_options& options)
      : options_(options), part_(options.output), pins_(options.state_dir) {}

  net::awaitable<boost::system::result<fetch_outcome, fetch_failure>> run() {
    const auto started = clock::now();
    if (auto opened = part_.open(); !opened) {
      if (opened.error() == boost::system::errc::too_many_symbolic_link_levels) {
        co_return fail(opened.error(), "refusing to write " + part_.path().string() +
                                           ": it is a symbolic link, which lanrelay never "
                                           "creates (planted by another user?); remove it and "
                                           "fetch again");
      }
      co_return fail(opened.error(), "cannot write " + part_.path().string() + " next to " +
                                         options_.output.string() + ": " +
                                         opened.error().message());
    }
    if (options_.digest) {
      trust_ = [digest = *options_.digest](const discovery::offer&) { return digest; };
    }

    const auto patience_ends = clock::now() + options_.busy_patience;
    for (bool first = true; !done_; first = false) {
      if (!first) {
        if (clock::now() + options_.busy_poll > patience_ends) {
          break;
        }
        net::steady_timer pause(co_await net::this_coro::executor, options_.busy_poll);
        co_await pause.async_wait(net::as_tuple(net::use_awaitable));
      }
      all_busy_ = false;
      std::vector<candidate> offers = co_await discover();
      for (const auto& c : offers) {
        offers_seen_.insert(c.offer.url);
      }
      outcome_.offers_seen = offers_seen_.size();
      if (offers.empty()) {
        break;
      }
      co_await learn_catalog(offers);
      co_await try_offers(std::move(offers));
      if (!all_busy_) {
        break;
      }
    }
    if (!done_) {
      co_await try_upstream();
    }
    if (!done_) {
      co_return fail(last_error_ ? last_error_ : make_error_code(errc::not_found),
                     "could not get " + item_text() + ": " + outcome_.fallback_reason +
                         (options_.upstream ? "" : "; no upstream URL was given") + tried());
    }
    if (auto published = part_.publish(options_.output); !published) {
      co_return fail(published.error(), "cannot write " + options_.output.string());
    }
    add_to_peer_cache();
    outcome_.duration = std::chrono::duration_cast<std::chrono::milliseconds>(clock::now() - started);
    co_return outcome_;
  }

  std::string item_text() const {
    return std::string(to_string(options_.wanted.kind)) + " " + options_.wanted.name + " " +
           options_.wanted.version;
  }

  // Every attempt so far, one per line, for an error message.
  std::string tried() const {
    std::string out;
    for (const auto& a : outcome_.attempts) {
      out += "\n  " + a.url + ": " + a.outcome;
    }
    return out;
  }

 private:
  enum class attempt_result { complete, busy, bad_bytes, failed };
  enum class piece_list_fetch { verified, unavailable, wrong };

  static fetch_failure fail(boost::system::error_code code, std::string message) {
    return fetch_failure{code, std::move(message)};
  }

  net::awaitable<std::vector<candidate>> discover() {
    if (!options_.use_discovery) {
      outcome_.fallback_reason = "discovery disabled";
      co_return std::vector<candidate>{};
    }
    discovery::query q;
    q.transaction_id = random_u64();
    q.sender_cookie = random_u64();  // per query: a daemon on this machine may answer us
    q.kind = options_.wanted.kind;
    q.name = options_.wanted.name;
    q.version = options_.wanted.version;
    q.sha256 = options_.wanted.sha256;
    // A peer swarms (fetch.hpp): other peers still downloading the item may answer too.
    q.partial_ok = swarm_possible();
    if (options_.state_dir) {
      q.fallbacks = fallback_memory(*options_.state_dir / "fallbacks.json").pending();
    }

    if (options_.discovery.targets.empty()) {
      // The segment, then the address plan and DNS-SD, with their memory (discovery_sources.hpp).
      sources_options sources;
      sources.discovery = options_.discovery;
      sources.segment = options_.sources.segment;
      sources.sites = options_.sources.sites;
      sources.dns_sd = options_.sources.dns_sd;
      sources.dns = {.resolv_conf = options_.sources.resolv_conf,
                     .server = options_.sources.dns_server,
                     .timeout = options_.sources.resolver_timeout};
      sources.site_keys = options_.site_keys;
      if (options_.state_dir) {
        sources.memory_file = *options_.state_dir / "segments.json";
      }
      sources.memory_period = options_.silent_segment_memory;
      auto searched = co_await discover_from_sources(q, sources);
      if (searched.offers.empty()) {
        outcome_.fallback_reason = searched.fallback_reason;
        const bool others_asked = std::any_of(
            searched.reports.begin(), searched.reports.end(), [](const source_report& r) {
              return r.tried && r.source != discovery_source::segment;
            });
        fallback_cause_ = others_asked ? discovery::fallback_reason::nothing_found
                                       : discovery::fallback_reason::segment_silent;
      }
      settle_fallbacks(q, searched.offers);
      co_return std::move(searched.offers);
    }

    auto found = co_await agent::discover(q, options_.discovery);
    if (found.offers.empty()) {
      outcome_.fallback_reason =
          found.destinations == 0 ? "no interface to query the segment on" : "no offers";
      fallback_cause_ = discovery::fallback_reason::nothing_found;
    }
    settle_fallbacks(q, found.offers);
    co_return std::move(found.offers);
  }

  // A relay answered a query that reported fallbacks: it has counted them.
  void settle_fallbacks(const discovery::query& q, const std::vector<candidate>& offers) {
    if (q.fallbacks.empty() || !options_.state_dir ||
        std::none_of(offers.begin(), offers.end(), [](const candidate& c) {
          return c.offer.role == discovery::responder_role::relay;
        })) {
      return;
    }
    fallback_memory(*options_.state_dir / "fallbacks.json").settle(q.fallbacks);
  }

  // Without a digest from the caller, a catalog signed with the pinned key, from a relay that
  // answered with a URL naming itself, says which bytes are genuine. It must not be older than
  // the newest one believed for that key (a replay could bring back a withdrawn item).
  net::awaitable<void> learn_catalog(const std::vector<candidate>& offers) {
    if (trust_ || options_.site_keys.empty()) {
      co_return;
    }
    std::set<std::string> asked;
    for (const auto& c : offers) {
      if (c.offer.role != discovery::responder_role::relay || !url_names_sender(c)) {
        continue;
      }
      auto url = boost::urls::parse_uri(c.offer.url);
      if (!url) {
        continue;
      }
      boost::urls::url catalog_url = *url;
      catalog_url.set_path("/-/catalog.signed");
      catalog_url.remove_query();
      if (!asked.insert(std::string(catalog_url.buffer())).second) {
        continue;
      }
      std::string document;
      const auto sender = route_to(c).address;
      if (!co_await fetch_catalog(catalog_url, sender, document)) {
        continue;
      }
      auto verified = verify_with_pinned_keys(document);
      if (!verified) {
        spdlog::warn("event=catalog_rejected url={} reason=\"{}\"", catalog_url.buffer(),
                     verified.error().message());
        continue;
      }
      auto& [signed_catalog, key] = *verified;
      if (options_.state_dir) {
        catalog_memory memory(*options_.state_dir / "catalogs.json");
        if (!memory.admits(key, signed_catalog.issued_at)) {
          spdlog::warn("event=catalog_rejected url={} reason=\"issued before a catalog already "
                       "believed for this site key: a replay\"",
                       catalog_url.buffer());
          continue;
        }
        memory.record(key, signed_catalog.issued_at);
      }
      pins_.learn(catalog_url.host(), signed_catalog.tls_certificates);
      named_urls_ = [urls = std::set<std::string, std::less<>>(signed_catalog.urls.begin(),
                                                               signed_catalog.urls.end())](
                        std::string_view offered) { return urls.contains(offered); };
      trust_ = [catalog = std::move(signed_catalog)](const discovery::offer& o)
          -> std::optional<trusted_digest> {
        const auto entry = find_entry(catalog, o.kind, o.name, o.version);
        if (!entry) {
          return std::nullopt;
        }
        return trusted_digest{entry->size, entry->sha256, entry->pieces};
      };
      co_return;
    }
  }

  // The relay's catalog document: over pinned HTTPS when the relay is known, else (or when that
  // fails) over HTTP. Either way it is believed only once its signature verifies.
  net::awaitable<bool> fetch_catalog(const boost::urls::url& http_url,
                                     const net::ip::address& sender, std::string& document) {
    const auto get = [&](fetch_request request) -> net::awaitable<bool> {
      document.clear();
      request.host_address = sender;
      auto got = co_await bounded_fetch(
          request,
          [&](std::span<const std::byte> chunk) -> result<void> {
            document.append(reinterpret_cast<const char*>(chunk.data()), chunk.size());
            return {};
          },
          max_catalog_bytes, true);
      if (!got.response || got.response->status != 200) {
        spdlog::info("event=catalog_unavailable url={} error=\"{}\"", request.url.buffer(),
                     !got.cut.empty() ? got.cut
                     : got.response   ? "status " + std::to_string(got.response->status)
                                      : got.response.error().message());
        co_return false;
      }
      spdlog::debug("event=catalog_fetched url={} bytes={}", request.url.buffer(), document.size());
      co_return true;
    };
    // Named requests, not temporaries in the co_await expressions: GCC 12 destroys such a
    // temporary twice.
    if (auto secure = pins_.route(http_url, options_.relay_https)) {
      const fetch_request over_https{.url = secure->url, .timeouts = options_.timeouts,
                                     .max_bytes = max_catalog_bytes, .tls = secure->tls};
      if (co_await get(over_https)) {
        co_return true;
      }
    }
    const fetch_request over_http{.url = http_url, .timeouts = options_.timeouts,
                                  .max_bytes = max_catalog_bytes};
    const bool fetched = co_await get(over_http);
    co_return fetched;
  }

  // A relay's offer over pinned HTTPS when its catalog listed certificates (relay_tls.hpp);
  // plain HTTP otherwise, or after an HTTPS failure unless HTTPS is required. Either way the
  // connection goes to the offer's sender.
  net::awaitable<attempt_result> download_offer(const candidate& c, const source& from) {
    if (c.offer.role == discovery::responder_role::relay &&
        options_.relay_https.mode != relay_https_mode::off) {
      const auto url = boost::urls::parse_uri(c.offer.url);
      const auto secure = url ? pins_.route(*url, options_.relay_https) : std::nullopt;
      if (secure) {
        source encrypted = from;
        encrypted.url = std::string(secure->url.buffer());
        encrypted.tls = secure->tls;
        const auto result = co_await download(encrypted, c.digest.size);
        if (result != attempt_result::failed ||
            options_.relay_https.mode == relay_https_mode::require) {
          co_return result;
        }
        spdlog::info("event=relay_https_failed url={} error=\"{}\" hint=\"trying plain HTTP\"",
                     secure->url.buffer(), last_error_.message());
      } else if (options_.relay_https.mode == relay_https_mode::require) {
        outcome_.attempts.push_back(
            {c.offer.url, "not used: HTTPS is required and the relay's catalog lists no certificate"});
        co_return attempt_result::failed;
      }
    }
    co_return co_await download(from, c.digest.size);
  }

  // A catalog is believed when any pinned key verifies it (two keys are pinned during rotation).
  result<std::pair<catalog, public_key>> verify_with_pinned_keys(std::string_view document) const {
    boost::system::error_code last = make_error_code(trust_errc::wrong_key);
    for (const auto& key : options_.site_keys) {
      auto verified = verify_catalog(document, key, std::chrono::system_clock::now());
      if (verified) {
        return std::pair{std::move(*verified), key};
      }
      last = verified.error();
      if (last != make_error_code(trust_errc::wrong_key)) {
        break;
      }
    }
    return last;
  }

  // Forgets the partial bytes and what was known about them: the next source's content differs.
  void start_content(const trusted_digest& digest) {
    if (!expected_ || expected_->sha256 != digest.sha256) {
      part_.truncate(0);
      pieces_.reset();
      verified_ = 0;
    }
    expected_ = digest;
  }

  net::awaitable<void> try_offers(std::vector<candidate> offers) {
    if (!trust_) {
      outcome_.fallback_reason = "no trusted digest for the offered content";
      fallback_cause_ = discovery::fallback_reason::untrusted_offers;
      co_return;
    }
    std::mt19937_64 random(random_u64());
    auto chosen = select_offers(std::move(offers), options_.wanted, trust_, random, named_urls_);
    if (chosen.foreign_host > 0 || chosen.same_host > 0) {
      spdlog::info("event=offers_ignored foreign_host={} same_host={}", chosen.foreign_host,
                   chosen.same_host);
    }
    if (chosen.ordered.empty()) {
      outcome_.fallback_reason = chosen.untrusted > 0      ? "no offer matched a trusted digest"
                                 : chosen.foreign_host > 0 ? "no offer named its sender"
                                                           : "no offer qualified";
      fallback_cause_ = discovery::fallback_reason::untrusted_offers;
      co_return;
    }
    if (swarm_possible()) {
      const auto swarmed = co_await swarm(chosen.ordered);
      if (swarmed == swarm_result::done) {
        co_return;
      }
      if (swarmed == swarm_result::gave_up) {
        outcome_.fallback_reason = "the swarm made no progress for " +
                                   seconds_text(options_.busy_patience) + " s";
        co_return;
      }
    }
    std::size_t busy = 0;
    std::size_t tried = 0;
    for (const candidate& c : chosen.ordered) {
      if (bad_.contains(c.offer.url) || c.offer.pieces_held) {
        continue;  // a partial holder serves pieces to a swarm only
      }
      if (const auto it = not_before_.find(c.offer.url);
          it != not_before_.end() && clock::now() < it->second) {
        ++busy;  // said 503 a moment ago: honour its Retry-After
        ++tried;
        continue;
      }
      ++tried;
      start_content(c.digest);
      // A URL the catalog names on another host is fetched from that host.
      const source from{.url = c.offer.url,
                        .address = c.named_by_catalog ? std::nullopt
                                                      : std::optional(route_to(c).address)};
      if (c.digest.pieces && !pieces_) {
        if (co_await fetch_piece_list(from, c.digest) == piece_list_fetch::wrong) {
          bad_.insert(c.offer.url);
          continue;
        }
      }
      const auto result = co_await download_offer(c, from);
      if (result == attempt_result::busy) {
        not_before_[c.offer.url] = clock::now() + retry_after_;
        ++busy;
        continue;
      }
      if (result == attempt_result::bad_bytes) {
        spdlog::warn("event=hash_mismatch url={} expected_sha256={} piece_verified_bytes={}",
                     c.offer.url, to_hex(c.digest.sha256), verified_);
        bad_.insert(c.offer.url);
        continue;
      }
      if (result == attempt_result::complete) {
        const auto actual = part_.digest();
        if (actual && *actual == c.digest.sha256) {
          outcome_.source = c.offer.role == discovery::responder_role::relay ? fetch_source::relay
                                                                            : fetch_source::peer;
          outcome_.responder = responder_;
          outcome_.version = c.offer.version;
          outcome_.sha256 = c.digest.sha256;
          outcome_.verified = true;
          outcome_.fallback_reason.clear();
          done_ = true;
          co_return;
        }
        // Without a piece list every byte came from this source (each starts from zero).
        outcome_.attempts.back().outcome = "digest mismatch: bytes discarded, offer skipped";
        spdlog::warn("event=hash_mismatch url={} expected_sha256={}", c.offer.url,
                     to_hex(c.digest.sha256));
        bad_.insert(c.offer.url);
        part_.truncate(0);
        pieces_.reset();
        verified_ = 0;
      }
    }
    all_busy_ = tried > 0 && busy == tried;
    outcome_.fallback_reason = all_busy_ ? "every parent in the segment was busy"
                                         : "no offer could deliver";
    fallback_cause_ = all_busy_ ? discovery::fallback_reason::holders_busy
                                : discovery::fallback_reason::holders_failed;
  }

  // Swarming (fetch.hpp): a peer with a piece list takes pieces from several holders at once.
  bool swarm_possible() const {
    return options_.peer_cache && options_.state_dir.has_value() &&
           options_.relay_https.mode != relay_https_mode::require;
  }

  enum class swarm_result { done, not_started, gave_up };

  static source source_of(const candidate& c) {
    return source{.url = c.offer.url,
                  .address = c.named_by_catalog ? std::nullopt
                                                : std::optional(route_to(c).address)};
  }

  net::awaitable<swarm_result> swarm(const std::vector<candidate>& offers) {
    const auto first = std::find_if(offers.begin(), offers.end(), [&](const candidate& c) {
      return c.digest.pieces.has_value() && !bad_.contains(c.offer.url);
    });
    if (first == offers.end()) {
      co_return swarm_result::not_started;
    }
    const trusted_digest digest = first->digest;
    start_content(digest);
    for (const candidate& c : offers) {
      if (pieces_) {
        break;
      }
      if (c.digest != digest || bad_.contains(c.offer.url)) {
        continue;
      }
      if (co_await fetch_piece_list(source_of(c), digest) == piece_list_fetch::wrong) {
        bad_.insert(c.offer.url);
      }
    }
    auto version = canonical_version(options_.wanted.kind, first->offer.version);
    if (!pieces_ || pieces_->pieces.empty() || !version) {
      co_return swarm_result::not_started;
    }
    auto writer = partial_item_writer::create(
        *options_.state_dir / "cache", item_key{options_.wanted.kind, options_.wanted.name, *version},
        digest.sha256, *pieces_);
    if (!writer) {
      spdlog::info("event=swarm_unavailable name={} error=\"{}\" hint=\"fetching from one holder "
                   "at a time\"",
                   options_.wanted.name, writer.error().message());
      co_return swarm_result::not_started;
    }
    writer_ = std::move(*writer);
    swarm_.emplace(pieces_->pieces.size(), random_u64());
    swarm_->last_progress = clock::now();
    swarm_->version = first->offer.version;
    co_await learn_holders(offers, digest);
    spdlog::info("event=swarm_started name={} pieces={} holders={}", options_.wanted.name,
                 pieces_->pieces.size(), swarm_->scheduler.holder_count());
    co_await ((swarm_worker() && swarm_worker() && swarm_worker() && swarm_worker()) ||
              swarm_refresher(digest));
    const auto holders = swarm_->scheduler.holder_count();
    outcome_.attempts.push_back(
        {"swarm", std::to_string(swarm_->scheduler.done_count()) + " of " +
                      std::to_string(pieces_->pieces.size()) + " pieces from " +
                      std::to_string(holders) + " holders (" + std::to_string(swarm_->relay_bytes) +
                      " bytes from relays, " + std::to_string(swarm_->peer_bytes) +
                      " from peers)"});
    if (!swarm_->scheduler.complete()) {
      co_return swarm_->failed ? swarm_result::not_started : swarm_result::gave_up;
    }
    // The verified pieces, in order, into the output's partial file (which hashes them whole).
    part_.truncate(0);
    std::vector<std::byte> buffer(1 << 20);
    for (std::uint64_t offset = 0; offset < pieces_->item_size;) {
      const auto n = ::pread(writer_->data_fd(), buffer.data(),
                             static_cast<std::size_t>(std::min<std::uint64_t>(buffer.size(), pieces_->item_size - offset)),
                             static_cast<off_t>(offset));
      if (n <= 0) {
        co_return swarm_result::not_started;
      }
      if (!part_.write(std::span(buffer).first(static_cast<std::size_t>(n)))) {
        co_return swarm_result::not_started;
      }
      offset += static_cast<std::uint64_t>(n);
    }
    const auto actual = part_.digest();
    if (!actual || *actual != digest.sha256) {
      outcome_.attempts.back().outcome += ": whole-item digest mismatch";
      part_.truncate(0);
      co_return swarm_result::gave_up;
    }
    verified_ = pieces_->item_size;
    outcome_.source = swarm_->peer_bytes > swarm_->relay_bytes ? fetch_source::peer
                                                               : fetch_source::relay;
    outcome_.responder = responder_;
    outcome_.version = swarm_->version;
    outcome_.sha256 = digest.sha256;
    outcome_.verified = true;
    outcome_.bytes = pieces_->item_size;
    outcome_.relay_bytes = swarm_->relay_bytes;
    outcome_.peer_bytes = swarm_->peer_bytes;
    outcome_.fallback_reason.clear();
    done_ = true;
    co_return swarm_result::done;
  }

  // Adds the holders among `offers` (same content only); asks partial holders whose count of
  // pieces changed which ones they have (a few per round, so a large segment costs bounded
  // requests).
  net::awaitable<void> learn_holders(const std::vector<candidate>& offers, const trusted_digest& digest) {
    std::size_t asked = 0;
    for (const candidate& c : offers) {
      if (c.digest != digest || bad_.contains(c.offer.url)) {
        continue;
      }
      // One holder per responder (its cookie), whatever addresses it answers from: one request
      // to it at a time, and one bad piece drops it on every address.
      auto& sched = swarm_->scheduler;
      const auto known = swarm_->by_cookie.find(c.offer.sender_cookie);
      std::size_t id = 0;
      if (known != swarm_->by_cookie.end()) {
        id = known->second;
      } else {
        id = sched.holder(c.offer.url, c.offer.role == discovery::responder_role::relay);
        swarm_->by_cookie.emplace(c.offer.sender_cookie, id);
        if (swarm_->sources.size() <= id) {
          swarm_->sources.resize(id + 1);
        }
        swarm_->sources[id] = source_of(c);
      }
      if (sched.dropped(id)) {
        continue;
      }
      if (!c.offer.pieces_held) {
        sched.holds_all(id);
      } else if (*c.offer.pieces_held != sched.known_pieces(id) && asked < max_have_requests) {
        ++asked;
        if (auto have = co_await fetch_have(swarm_->sources[id], digest)) {
          sched.holds(id, *have);
        }
      }
    }
  }

  // GET /-/have/<sha256> from a partial holder.
  net::awaitable<std::optional<piece_bitfield>> fetch_have(const source& from, const trusted_digest& digest) {
    auto url = boost::urls::parse_uri(from.url);
    if (!url) {
      co_return std::nullopt;
    }
    boost::urls::url have_url = *url;
    have_url.set_path("/-/have/" + to_hex(digest.sha256));
    have_url.remove_query();
    const std::uint64_t max_size = (pieces_->pieces.size() + 7) / 8;
    std::vector<std::byte> body;
    const fetch_request request{.url = have_url, .timeouts = options_.timeouts,
                                .max_bytes = max_size, .host_address = from.address};
    auto got = co_await bounded_fetch(
        request,
        [&](std::span<const std::byte> chunk) -> result<void> {
          body.insert(body.end(), chunk.begin(), chunk.end());
          return {};
        },
        max_size, true);
    if (!got.response || got.response->status != 200) {
      co_return std::nullopt;
    }
    co_return piece_bitfield::parse(body, pieces_->pieces.size());
  }

  // Four of these run at once: pieces from up to four holders in parallel. Each fetches pieces
  // until every one is verified, the swarm stalls for busy_patience, or writing
  // fails.
  net::awaitable<void> swarm_worker() {
    net::steady_timer idle(co_await net::this_coro::executor);
    while (!swarm_->scheduler.complete() && !swarm_->over) {
      const auto now = clock::now();
      auto next = swarm_->scheduler.next(now);
      if (!next) {
        if (now - swarm_->last_progress > options_.busy_patience) {
          swarm_->over = true;
          break;
        }
        idle.expires_after(swarm_idle_wait);
        co_await idle.async_wait(net::as_tuple(net::use_awaitable));
        continue;
      }
      // Ends early when another holder's copy of the piece is verified first (the endgame).
      co_await (fetch_piece(*next) || until_done(next->piece));
    }
  }

  // Returns once `piece` is verified (or the swarm is over); cancelled when the fetch ends first.
  net::awaitable<void> until_done(std::size_t piece) {
    net::steady_timer timer(co_await net::this_coro::executor);
    while (!swarm_->scheduler.done(piece) && !swarm_->over) {
      timer.expires_after(swarm_idle_wait);
      const auto [ec] = co_await timer.async_wait(net::as_tuple(net::use_awaitable));
      if (ec) {
        co_return;
      }
    }
  }

  // Asks the segment again for holders as long as the swarm runs (cancelled when it ends).
  net::awaitable<void> swarm_refresher(trusted_digest digest) {
    net::steady_timer timer(co_await net::this_coro::executor);
    for (;;) {
      timer.expires_after(swarm_refresh);
      const auto [ec] = co_await timer.async_wait(net::as_tuple(net::use_awaitable));
      if (ec) {
        co_return;
      }
      std::vector<candidate> offers = co_await discover();
      std::mt19937_64 random(random_u64());
      auto chosen = select_offers(std::move(offers), options_.wanted, trust_, random, named_urls_);
      co_await learn_holders(chosen.ordered, digest);
    }
  }

  // One piece from one holder by Range, verified against the piece list before it is kept.
  net::awaitable<void> fetch_piece(piece_scheduler::assignment a) {
    auto& sched = swarm_->scheduler;
    const source from = swarm_->sources[a.holder];
    const std::uint64_t offset = pieces_->piece_offset(a.piece);
    const std::uint64_t length = pieces_->piece_length(a.piece);
    auto url = boost::urls::parse_uri(from.url);
    if (!url) {
      sched.drop(a.holder);
      sched.finished(a, false);
      co_return;
    }
    fetch_request request{.url = *url, .offset = offset, .range_length = length,
                          .timeouts = options_.timeouts, .max_bytes = pieces_->item_size,
                          .host_address = from.address};
    std::vector<std::byte> body;
    body.reserve(static_cast<std::size_t>(length));
    auto got = co_await bounded_fetch(
        request,
        [&](std::span<const std::byte> chunk) -> result<void> {
          const auto room = static_cast<std::size_t>(length - body.size());
          body.insert(body.end(), chunk.begin(), chunk.begin() + static_cast<std::ptrdiff_t>(std::min(room, chunk.size())));
          if (chunk.size() > room) {
            return make_error_code(errc::size_mismatch);  // a server that ignored the range's end
          }
          return {};
        },
        length, true);
    const auto now = clock::now();
    if (sched.done(a.piece)) {
      sched.finished(a, false);  // another copy came first: this one was cancelled or is spare
      co_return;
    }
    const bool whole = body.size() == length &&
                       (!got.response || got.response->status == 200 || got.response->status == 206);
    if (!whole) {
      if (got.response && got.response->status == 503) {
        sched.pause(a.holder, now + std::clamp<std::chrono::milliseconds>(
                                        got.response->retry_after.value_or(std::chrono::seconds(1)),
                                        std::chrono::milliseconds(100), std::chrono::milliseconds(10'000)));
      } else if (got.response && (got.response->status == 416 || got.response->status == 404)) {
        sched.refused(a.holder, a.piece);
        sched.pause(a.holder, now + swarm_idle_wait);
      } else {
        const auto failures = ++swarm_->failures[from.url];
        outcome_.attempts.push_back(
            {from.url, "piece " + std::to_string(a.piece) + ": " +
                           (!got.cut.empty()   ? got.cut
                            : got.response     ? "HTTP " + std::to_string(got.response->status)
                                               : describe_error(request, got.response.error()))});
        sched.pause(a.holder, now + std::chrono::seconds(1));
        if (failures >= max_holder_failures) {
          sched.drop(a.holder);
        }
      }
      sched.finished(a, false);
      co_return;
    }
    if (sha256_of(body) != pieces_->pieces[a.piece]) {
      sched.drop(a.holder);
      sched.finished(a, false);
      bad_.insert(from.url);
      outcome_.attempts.push_back({from.url, "bad piece " + std::to_string(a.piece) +
                                                 ": discarded, holder dropped"});
      spdlog::warn("event=bad_piece url={} piece={} expected_sha256={}", from.url, a.piece,
                   to_hex(pieces_->pieces[a.piece]));
      co_return;
    }
    if (!sched.finished(a, true)) {
      co_return;  // the endgame's other copy was first
    }
    if (auto written = writer_->write_piece(a.piece, body); !written) {
      spdlog::warn("event=swarm_write_failed path={} error=\"{}\"", writer_->data_path().string(),
                   written.error().message());
      swarm_->over = true;
      swarm_->failed = true;
      co_return;
    }
    (sched.is_relay(a.holder) ? swarm_->relay_bytes : swarm_->peer_bytes) += length;
    if (got.response) {
      responder_ = got.response->peer;
    }
    swarm_->last_progress = now;
    if (options_.progress) {
      options_.progress(std::uint64_t{sched.done_count()} * pieces_->piece_size, pieces_->item_size);
    }
  }

  // GET /-/pieces/<sha256> from the holder; kept when it hashes to the trusted digest.
  net::awaitable<piece_list_fetch> fetch_piece_list(const source& from, const trusted_digest& digest) {
    auto url = boost::urls::parse_uri(from.url);
    if (!url) {
      co_return piece_list_fetch::unavailable;
    }
    boost::urls::url list_url = *url;
    list_url.set_path("/-/pieces/" + to_hex(digest.sha256));
    list_url.remove_query();
    outcome_.attempts.push_back({std::string(list_url.buffer()), ""});
    const std::size_t attempt = outcome_.attempts.size() - 1;
    const std::uint64_t max_size = std::min<std::uint64_t>(
        max_piece_list_size, piece_list_header_size + 32 * piece_count(digest.size, min_piece_size));
    std::vector<std::byte> body;
    fetch_request request{.url = list_url, .timeouts = options_.timeouts, .max_bytes = max_size,
                          .host_address = from.address};
    auto got = co_await bounded_fetch(
        request,
        [&](std::span<const std::byte> chunk) -> result<void> {
          body.insert(body.end(), chunk.begin(), chunk.end());
          return {};
        },
        max_size, from.bounded);
    auto& outcome = outcome_.attempts[attempt].outcome;
    if (!got.response || got.response->status != 200) {
      outcome = (!got.cut.empty()      ? got.cut
                 : got.response        ? "HTTP " + std::to_string(got.response->status)
                                       : describe_error(request, got.response.error())) +
                ": no piece list, the whole file must come from this source";
      co_return piece_list_fetch::unavailable;
    }
    auto parsed = parse_piece_list(body);
    if (sha256_of(body) != *digest.pieces || !parsed || parsed->item_size != digest.size) {
      outcome = "piece list does not match the signed digest: offer skipped";
      spdlog::warn("event=piece_list_mismatch url={} expected_sha256={}", list_url.buffer(),
                   to_hex(*digest.pieces));
      co_return piece_list_fetch::wrong;
    }
    outcome = "ok: " + std::to_string(parsed->pieces.size()) + " pieces";
    pieces_ = std::move(*parsed);
    part_.truncate(0);  // bytes kept so far were not checked piece by piece
    verified_ = 0;
    co_return piece_list_fetch::verified;
  }

  net::awaitable<void> try_upstream() {
    if (!options_.upstream) {
      co_return;
    }
    if (fallback_cause_ && options_.state_dir) {
      fallback_memory(*options_.state_dir / "fallbacks.json").record(*fallback_cause_);
    }
    const bool tls = options_.upstream->scheme_id() == boost::urls::scheme::https;
    const auto digest = options_.digest ? options_.digest : expected_;
    if (!digest && !tls) {
      if (options_.expected_size) {
        spdlog::info("event=upstream_size_only url={} hint=\"plain HTTP and no digest: only the size "
                     "is checked\"",
                     options_.upstream->buffer());
      } else {
        spdlog::warn("event=upstream_unverified url={} hint=\"plain HTTP and no digest: bytes cannot "
                     "be verified\"",
                     options_.upstream->buffer());
      }
    }
    if (!digest || !expected_ || digest->sha256 != expected_->sha256) {
      part_.truncate(0);
      pieces_.reset();
      verified_ = 0;
    }
    std::optional<proxy_settings> proxy;
    if (options_.upstream_proxy) {
      proxy = co_await options_.upstream_proxy(*options_.upstream);
    }
    const source upstream{.url = std::string(options_.upstream->buffer()),
                          .proxy = std::move(proxy),
                          .bounded = false};
    const auto result = co_await download(upstream, digest ? std::optional(digest->size)
                                                           : options_.expected_size);
    if (result == attempt_result::busy) {
      last_error_ = make_error_code(errc::not_found);
    }
    if (result == attempt_result::bad_bytes) {
      last_error_ = make_error_code(errc::digest_mismatch);
    }
    if (result != attempt_result::complete) {
      co_return;
    }
    const auto actual = part_.digest();
    if (!actual || (digest && *actual != digest->sha256)) {
      outcome_.attempts.back().outcome = "digest mismatch: upstream bytes discarded";
      last_error_ = make_error_code(errc::digest_mismatch);
      part_.truncate(0);
      co_return;
    }
    outcome_.source = fetch_source::upstream;
    outcome_.responder = responder_;
    outcome_.version = options_.wanted.version;
    outcome_.sha256 = *actual;
    outcome_.verified = digest.has_value();
    if (outcome_.fallback_reason.empty()) {
      outcome_.fallback_reason = "no offer could deliver";
    }
    done_ = true;
    spdlog::info("event=upstream_fallback reason=\"{}\" url={}", outcome_.fallback_reason,
                 options_.upstream->buffer());
  }

  // Writes a chunk of the item, checking each piece as it completes when there is a piece list.
  // A bad piece is cut off the file at once (the file ends at the last verified piece) and fails
  // the transfer with digest_mismatch.
  result<void> take(std::span<const std::byte> chunk) {
    if (!pieces_) {
      return part_.write(chunk);
    }
    while (!chunk.empty()) {
      const std::size_t index = static_cast<std::size_t>(verified_ / pieces_->piece_size);
      if (index >= pieces_->pieces.size()) {
        return make_error_code(errc::size_mismatch);
      }
      const std::uint64_t in_piece = part_.size() - verified_;
      const std::uint64_t length = pieces_->piece_length(index);
      const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(chunk.size(), length - in_piece));
      if (auto written = part_.write(chunk.first(n)); !written) {
        return written;
      }
      piece_hasher_.update(chunk.first(n));
      chunk = chunk.subspan(n);
      if (in_piece + n == length) {
        if (piece_hasher_.finish() != pieces_->pieces[index]) {
          part_.truncate(verified_);
          bad_piece_ = index;
          return make_error_code(errc::digest_mismatch);
        }
        verified_ += length;
      }
    }
    return {};
  }

  // http_fetch under attempt_limits when `bounded`: a watchdog ends it when too few bytes arrive
  // in a window or when the attempt's deadline (sized from `size`) has passed.
  net::awaitable<bounded_response> bounded_fetch(const fetch_request& request, body_sink sink,
                                                 std::uint64_t size, bool bounded) {
    const auto deadline = options_.limits.attempt_deadline(size);
    if (!bounded || !deadline) {
      // Not `co_return bounded_response{co_await ...}`: GCC 12 miscompiles a co_await inside a
      // braced initialiser (the string member is destroyed uninitialised).
      auto response = co_await http_fetch(request, std::move(sink));
      co_return bounded_response{std::move(response), {}};
    }
    auto received = std::make_shared<std::atomic<std::uint64_t>>(0);
    body_sink counted = [received, sink = std::move(sink)](std::span<const std::byte> chunk) {
      received->fetch_add(chunk.size(), std::memory_order_relaxed);
      return sink(chunk);
    };
    auto raced = co_await (http_fetch(request, std::move(counted)) || watchdog(received, *deadline));
    if (raced.index() == 0) {
      co_return bounded_response{std::move(std::get<0>(raced)), {}};
    }
    co_return bounded_response{make_error_code(boost::system::errc::timed_out),
                               std::move(std::get<1>(raced))};
  }

  // Returns why the attempt must end; never returns while it may go on (cancelled when the
  // transfer ends first).
  net::awaitable<std::string> watchdog(std::shared_ptr<const std::atomic<std::uint64_t>> received,
                                       std::chrono::milliseconds limit) {
    const auto& limits = options_.limits;
    const auto start = clock::now();
    const auto deadline = start + limit;
    const std::uint64_t floor =
        limits.min_rate * static_cast<std::uint64_t>(limits.rate_window.count()) / 1000;
    auto window_start = start;
    std::uint64_t window_bytes = 0;
    net::steady_timer timer(co_await net::this_coro::executor);
    for (;;) {
      timer.expires_at(std::min(deadline, window_start + limits.rate_window));
      const auto [ec] = co_await timer.async_wait(net::as_tuple(net::use_awaitable));
      if (ec) {
        co_return std::string("cancelled");
      }
      const auto now = clock::now();
      const auto got = received->load(std::memory_order_relaxed);
      if (now >= deadline) {
        co_return "attempt deadline of " + seconds_text(limit) + " s passed";
      }
      if (now >= window_start + limits.rate_window) {
        if (got - window_bytes < floor) {
          co_return "too slow: " + std::to_string(got - window_bytes) + " bytes in " +
              seconds_text(now - window_start) + " s, below the floor of " +
              std::to_string(limits.min_rate) + " bytes/s";
        }
        window_start = now;
        window_bytes = got;
      }
    }
  }

  // Downloads (the rest of) the item from `from` into the partial file; `size` is the expected
  // total when known. With a piece list it resumes after the last verified piece; without one it
  // starts from zero, so that bytes from one source are never completed by another.
  net::awaitable<attempt_result> download(const source& from, std::optional<std::uint64_t> size) {
    auto url = boost::urls::parse_uri(from.url);
    outcome_.attempts.push_back({from.url, ""});
    const std::size_t attempt = outcome_.attempts.size() - 1;
    if (!url) {
      outcome_.attempts[attempt].outcome = "bad URL";
      co_return attempt_result::failed;
    }
    part_.truncate(pieces_ ? verified_ : 0);
    piece_hasher_ = sha256_hasher();
    bad_piece_.reset();
    // A server that ignores Range costs bytes, not correctness: http_fetch drops the first
    // `offset` bytes itself, so the sink always continues where the partial file ends.
    fetch_request request{.url = *url, .offset = part_.size(), .timeouts = options_.timeouts,
                          .tls = from.tls ? *from.tls : options_.tls, .proxy = from.proxy};
    if (!from.proxy) {
      request.host_address = from.address;
    }
    if (size) {
      request.max_bytes = *size;
    }
    const std::uint64_t start_offset = part_.size();
    auto got = co_await bounded_fetch(
        request,
        [&](std::span<const std::byte> chunk) -> result<void> {
          if (auto taken = take(chunk); !taken) {
            return taken;
          }
          if (options_.progress) {
            options_.progress(part_.size(), size.value_or(0));
          }
          return {};
        },
        size.value_or(0), from.bounded);
    auto& outcome = outcome_.attempts[attempt].outcome;
    if (!got.response) {
      if (bad_piece_) {
        outcome = "bad piece " + std::to_string(*bad_piece_) + ": discarded, offer skipped (" +
                  std::to_string(verified_) + " verified bytes kept)";
        co_return attempt_result::bad_bytes;
      }
      last_error_ = got.response.error();
      outcome = (got.cut.empty() ? describe_error(request, got.response.error()) : got.cut) +
                " after " + std::to_string(part_.size() - start_offset) + " bytes";
      if (size && part_.size() == *size) {
        co_return attempt_result::complete;  // every byte arrived before the source misbehaved
      }
      co_return attempt_result::failed;
    }
    responder_ = got.response->peer;
    if (got.response->status == 503) {
      outcome = "busy (503)";
      // Bounded: a parent cannot park us for long with a huge Retry-After.
      retry_after_ = std::clamp<std::chrono::milliseconds>(
          got.response->retry_after.value_or(std::chrono::seconds(1)),
          std::chrono::milliseconds(100), std::chrono::milliseconds(10'000));
      co_return attempt_result::busy;
    }
    if (got.response->status != 200 && got.response->status != 206) {
      outcome = "HTTP " + std::to_string(got.response->status);
      last_error_ = make_error_code(errc::not_found);
      co_return attempt_result::failed;
    }
    if (size && part_.size() != *size) {
      outcome = "short body: " + std::to_string(part_.size()) + " of " + std::to_string(*size) +
                " bytes";
      co_return attempt_result::failed;
    }
    outcome = "ok";
    outcome_.bytes = part_.size();
    co_return attempt_result::complete;
  }

  void add_to_peer_cache() {
    if (!options_.peer_cache || !options_.state_dir) {
      return;
    }
    auto store = content_store::open({.dir = *options_.state_dir / "cache"});
    if (!store) {
      spdlog::warn("event=peer_cache_unavailable dir={} error=\"{}\"", (*options_.state_dir / "cache").string(),
                   store.error().message());
      return;
    }
    auto version = canonical_version(options_.wanted.kind, outcome_.version);
    if (!version) {
      return;
    }
    auto added = (*store)->add_file(options_.output,
                                    item_key{options_.wanted.kind, options_.wanted.name, *version},
                                    outcome_.sha256);
    if (!added) {
      spdlog::warn("event=peer_cache_add_failed name={} error=\"{}\"", options_.wanted.name,
                   added.error().message());
    }
  }

  const fetch_options& options_;
  partial_file part_;
  trust_lookup trust_;
  catalog_url_lookup named_urls_;  // the exact URLs on other hosts the believed catalog names
  relay_pins pins_;  // relays' TLS certificates, learned from their signed catalogs
  std::optional<trusted_digest> expected_;  // what the partial bytes are part of
  std::optional<piece_list> pieces_;        // of expected_, verified against its digest
  std::uint64_t verified_ = 0;              // bytes checked against pieces_ (a piece boundary)
  sha256_hasher piece_hasher_;              // the piece being received
  std::optional<std::size_t> bad_piece_;    // the piece that failed in the current attempt
  fetch_outcome outcome_;
  std::string responder_;
  boost::system::error_code last_error_;
  bool done_ = false;
  // Why the segment could not serve the item, for the next query's report (fallback_memory.hpp);
  // unset when discovery was not used.
  std::optional<discovery::fallback_reason> fallback_cause_;
  bool all_busy_ = false;                  // the last round's offers all answered 503
  std::chrono::milliseconds retry_after_{1000};  // of the last 503
  std::map<std::string, clock::time_point> not_before_;  // busy parents: not again before
  std::set<std::string> bad_;              // URLs that served wrong bytes: never again this run
  std::set<std::string> offers_seen_;      // distinct offers (by URL) over every round

  // Swarming: the partial item this peer serves while it downloads, and the scheduler's state.
  struct swarm_state {
    swarm_state(std::size_t pieces, std::uint64_t seed) : scheduler(pieces, seed) {}
    piece_scheduler scheduler;
    std::vector<source> sources;  // by holder id
    std::map<std::uint64_t, std::size_t> by_cookie;  // responder cookie -> holder id
    std::map<std::string, unsigned> failures;
    clock::time_point last_progress;
    std::string version;
    std::uint64_t relay_bytes = 0;
    std::uint64_t peer_bytes = 0;
    bool over = false;    // stalled or failed: the workers stop
    bool failed = false;  // the partial item could not be written
  };
  static constexpr std::size_t max_have_requests = 8;  // per discovery round
  static constexpr unsigned max_holder_failures = 3;
  static constexpr std::chrono::milliseconds swarm_refresh{1000};
  static constexpr std::chrono::milliseconds swarm_idle_wait{50};
  std::unique_ptr<partial_item_writer> writer_;  // before swarm_: outlives nothing of it
  std::optional<swarm_state> swarm_;
};

}  // namespace

std::string_view to_string(fetch_source source) noexcept {
  switch (source) {
    case fetch_source::peer: return "peer";
    case fetch_source::relay: return "relay";
    case fetch_source::upstream: return "upstream";
  }
  return "upstream";
}

std::optional<std::chrono::milliseconds> attempt_limits::attempt_deadline(std::uint64_t size) const {
  if (min_rate == 0) {
    return std::nullopt;
  }
  return attempt_base + std::chrono::milliseconds(size / min_rate * 1000 + size % min_rate * 1000 / min_rate);
}

net::awaitable<boost::system::result<fetch_outcome, fetch_failure>> fetch(
    const fetch_options& options) {
  fetch_job job(options);
  if (options.deadline.count() <= 0) {
    co_return co_await job.run();
  }
  net::steady_timer timer(co_await net::this_coro::executor, options.deadline);
  auto raced = co_await (job.run() || timer.async_wait(net::as_tuple(net::use_awaitable)));
  if (raced.index() == 0) {
    co_return std::move(std::get<0>(raced));
  }
  spdlog::warn("event=fetch_deadline item=\"{}\" deadline_ms={}", job.item_text(),
               options.deadline.count());
  co_return fetch_failure{make_error_code(boost::system::errc::timed_out),
                          "could not get " + job.item_text() + " within the deadline of " +
                              seconds_text(options.deadline) +
                              " s (--deadline); nothing was written" + job.tried()};
}

}  // namespace lanrelay::agent
