#include "lanrelay/agent/fetch.hpp"

#include "lanrelay/agent/segment_memory.hpp"
#include "lanrelay/common/file_io.hpp"
#include "lanrelay/common/interfaces.hpp"
#include "lanrelay/common/machine_cookie.hpp"
#include "lanrelay/common/store.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/url/parse.hpp>
#include <spdlog/spdlog.h>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <random>
#include <set>

namespace lanrelay::agent {

[[noreturn]] void throw_exception_from_error(const fetch_failure& e,
                                             const boost::source_location&) {
  throw std::runtime_error(e.message);
}

namespace {

namespace net = boost::asio;
using clock = std::chrono::steady_clock;

// Largest signed catalog we read from a relay (the format's own limit).
constexpr std::uint64_t max_catalog_bytes = kMaxCatalogDocumentSize;

// The file the bytes are written to until they are verified; renamed over the output at the end.
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

  result<void> open() {
    fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd_ < 0) {
      return boost::system::error_code(errno, boost::system::system_category());
    }
    return {};
  }

  result<void> write(std::span<const std::byte> data) {
    if (auto written = write_all(fd_, data); !written) {
      return written;
    }
    hasher_.update(data);
    size_ += data.size();
    return {};
  }

  // Forgets every byte: after a digest mismatch, or when a server ignored our Range.
  void discard() {
    ::ftruncate(fd_, 0);
    ::lseek(fd_, 0, SEEK_SET);
    hasher_ = sha256_hasher();
    size_ = 0;
  }

  std::uint64_t size() const noexcept { return size_; }
  sha256_digest digest() { return hasher_.finish(); }

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
  std::uint64_t size_ = 0;
};

std::string describe_error(const boost::system::error_code& ec) {
  return is_timeout(ec) ? "timeout (" + ec.message() + ")" : ec.message();
}

class fetch_job {
 public:
  explicit fetch_job(const fetch_options& options)
      : options_(options), part_(options.output), pins_(options.state_dir) {}

  net::awaitable<boost::system::result<fetch_outcome, fetch_failure>> run() {
    const auto started = clock::now();
    if (auto opened = part_.open(); !opened) {
      co_return fail(opened.error(), "cannot write next to " + options_.output.string());
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
      std::string tried;
      for (const auto& a : outcome_.attempts) {
        tried += "\n  " + a.url + ": " + a.outcome;
      }
      co_return fail(last_error_ ? last_error_ : make_error_code(errc::not_found),
                     "could not get " + std::string(to_string(options_.wanted.kind)) + " " +
                         options_.wanted.name + " " + options_.wanted.version + ": " +
                         outcome_.fallback_reason +
                         (options_.upstream ? "" : "; no upstream URL was given") + tried);
    }
    if (auto published = part_.publish(options_.output); !published) {
      co_return fail(published.error(), "cannot write " + options_.output.string());
    }
    add_to_peer_cache();
    outcome_.duration = std::chrono::duration_cast<std::chrono::milliseconds>(clock::now() - started);
    co_return outcome_;
  }

 private:
  static fetch_failure fail(boost::system::error_code code, std::string message) {
    return fetch_failure{code, std::move(message)};
  }

  net::awaitable<std::vector<candidate>> discover() {
    if (!options_.use_discovery) {
      outcome_.fallback_reason = "discovery disabled";
      co_return std::vector<candidate>{};
    }
    const bool broadcast = options_.discovery.targets.empty();
    const std::string segment = broadcast ? segment_id(list_interfaces()) : std::string();
    std::optional<segment_memory> memory;
    if (broadcast && options_.state_dir) {
      memory.emplace(*options_.state_dir / "segments.json");
      if (memory->is_silent(segment, std::chrono::system_clock::now())) {
        outcome_.fallback_reason = "segment " + segment + " gave no answers recently";
        co_return std::vector<candidate>{};
      }
    }

    discovery::query q;
    q.transaction_id = random_u64();
    q.sender_cookie = random_u64();  // per query: a daemon on this machine may answer us
    q.kind = options_.wanted.kind;
    q.name = options_.wanted.name;
    q.version = options_.wanted.version;
    q.sha256 = options_.wanted.sha256;
    auto found = co_await agent::discover(q, options_.discovery);

    if (memory && !segment.empty()) {
      const auto now = std::chrono::system_clock::now();
      if (found.offers.empty()) {
        memory->remember_silence(segment, now, now + options_.silent_segment_memory);
      } else {
        memory->remember_answer(segment, now + options_.silent_segment_memory);
      }
    }
    if (found.offers.empty()) {
      outcome_.fallback_reason =
          found.destinations == 0 ? "no interface to query the segment on" : "no offers";
    }
    co_return std::move(found.offers);
  }

  // Without a digest from the caller, a catalog signed with the pinned key, from a relay that
  // answered, says which bytes are genuine.
  net::awaitable<void> learn_catalog(const std::vector<candidate>& offers) {
    if (trust_ || options_.site_keys.empty()) {
      co_return;
    }
    std::set<std::string> asked;
    for (const auto& c : offers) {
      if (c.offer.role != discovery::responder_role::relay) {
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
      if (!co_await fetch_catalog(catalog_url, document)) {
        continue;
      }
      auto verified = verify_with_pinned_keys(document);
      if (!verified) {
        spdlog::warn("event=catalog_rejected url={} reason=\"{}\"", catalog_url.buffer(),
                     verified.error().message());
        continue;
      }
      pins_.learn(catalog_url.host(), verified->tls_certificates);
      trust_ = [catalog = std::move(*verified)](const discovery::offer& o)
          -> std::optional<trusted_digest> {
        const auto entry = find_entry(catalog, o.kind, o.name, o.version);
        if (!entry) {
          return std::nullopt;
        }
        return trusted_digest{entry->size, entry->sha256};
      };
      co_return;
    }
  }

  enum class attempt_result { complete, busy, failed };

  // The relay's catalog document: over pinned HTTPS when the relay is known, else (or when that
  // fails) over HTTP. Either way it is believed only once its signature verifies.
  net::awaitable<bool> fetch_catalog(const boost::urls::url& http_url, std::string& document) {
    const auto get = [&](const fetch_request& request) -> net::awaitable<bool> {
      document.clear();
      auto response = co_await http_fetch(request, [&](std::span<const std::byte> chunk) -> result<void> {
        document.append(reinterpret_cast<const char*>(chunk.data()), chunk.size());
        return {};
      });
      if (!response || response->status != 200) {
        spdlog::info("event=catalog_unavailable url={} error=\"{}\"", request.url.buffer(),
                     response ? "status " + std::to_string(response->status)
                              : response.error().message());
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
  // plain HTTP otherwise, or after an HTTPS failure unless HTTPS is required.
  net::awaitable<attempt_result> download_offer(const candidate& c) {
    if (c.offer.role == discovery::responder_role::relay &&
        options_.relay_https.mode != relay_https_mode::off) {
      const auto url = boost::urls::parse_uri(c.offer.url);
      const auto secure = url ? pins_.route(*url, options_.relay_https) : std::nullopt;
      if (secure) {
        const std::string https_url(secure->url.buffer());
        const auto result = co_await download(https_url, c.digest.size, std::nullopt, secure->tls);
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
    co_return co_await download(c.offer.url, c.digest.size);
  }

  // A catalog is believed when any pinned key verifies it (two keys are pinned during rotation).
  result<catalog> verify_with_pinned_keys(std::string_view document) const {
    result<catalog> verified = make_error_code(trust_errc::wrong_key);
    for (const auto& key : options_.site_keys) {
      verified = verify_catalog(document, key, std::chrono::system_clock::now());
      if (verified || verified.error() != make_error_code(trust_errc::wrong_key)) {
        break;
      }
    }
    return verified;
  }

  net::awaitable<void> try_offers(std::vector<candidate> offers) {
    if (!trust_) {
      outcome_.fallback_reason = "no trusted digest for the offered content";
      co_return;
    }
    std::mt19937_64 random(random_u64());
    auto chosen = select_offers(std::move(offers), options_.wanted, trust_, random);
    if (chosen.ordered.empty()) {
      outcome_.fallback_reason = chosen.untrusted > 0 ? "no offer matched a trusted digest"
                                                      : "no offer qualified";
      co_return;
    }
    std::size_t busy = 0;
    std::size_t tried = 0;
    for (const candidate& c : chosen.ordered) {
      if (bad_.contains(c.offer.url)) {
        continue;
      }
      if (const auto it = not_before_.find(c.offer.url);
          it != not_before_.end() && clock::now() < it->second) {
        ++busy;  // said 503 a moment ago: honour its Retry-After
        ++tried;
        continue;
      }
      ++tried;
      // Bytes already received belong to the same content (same digest): resume them.
      if (expected_ && expected_->sha256 != c.digest.sha256) {
        part_.discard();
      }
      expected_ = c.digest;
      const auto result = co_await download_offer(c);
      if (result == attempt_result::busy) {
        not_before_[c.offer.url] = clock::now() + retry_after_;
        ++busy;
        continue;
      }
      if (result == attempt_result::complete) {
        if (part_.digest() == c.digest.sha256) {
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
        outcome_.attempts.back().outcome = "digest mismatch: bytes discarded, offer skipped";
        spdlog::warn("event=hash_mismatch url={} expected_sha256={}", c.offer.url,
                     to_hex(c.digest.sha256));
        bad_.insert(c.offer.url);
        part_.discard();
      }
    }
    all_busy_ = tried > 0 && busy == tried;
    outcome_.fallback_reason = all_busy_ ? "every parent in the segment was busy"
                                         : "no offer could deliver";
  }

  net::awaitable<void> try_upstream() {
    if (!options_.upstream) {
      co_return;
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
    if (digest != expected_) {
      part_.discard();
    }
    std::optional<proxy_settings> proxy;
    if (options_.upstream_proxy) {
      proxy = co_await options_.upstream_proxy(*options_.upstream);
    }
    const auto result = co_await download(std::string(options_.upstream->buffer()),
                                          digest ? std::optional(digest->size)
                                                 : options_.expected_size,
                                          std::move(proxy));
    if (result == attempt_result::busy) {
      last_error_ = make_error_code(errc::not_found);
    }
    if (result != attempt_result::complete) {
      co_return;
    }
    const auto actual = part_.digest();
    if (digest && actual != digest->sha256) {
      outcome_.attempts.back().outcome = "digest mismatch: upstream bytes discarded";
      last_error_ = make_error_code(errc::digest_mismatch);
      part_.discard();
      co_return;
    }
    outcome_.source = fetch_source::upstream;
    outcome_.responder = responder_;
    outcome_.version = options_.wanted.version;
    outcome_.sha256 = actual;
    outcome_.verified = digest.has_value();
    if (outcome_.fallback_reason.empty()) {
      outcome_.fallback_reason = "no offer could deliver";
    }
    done_ = true;
    spdlog::info("event=upstream_fallback reason=\"{}\" url={}", outcome_.fallback_reason,
                 options_.upstream->buffer());
  }

  // Downloads (the rest of) `url` into the partial file; `size` is the expected total when known.
  net::awaitable<attempt_result> download(const std::string& url_text,
                                          std::optional<std::uint64_t> size,
                                          std::optional<proxy_settings> proxy = std::nullopt,
                                          std::optional<tls_options> tls = std::nullopt) {
    auto url = boost::urls::parse_uri(url_text);
    outcome_.attempts.push_back({url_text, ""});
    auto& attempt = outcome_.attempts.back();
    if (!url) {
      attempt.outcome = "bad URL";
      co_return attempt_result::failed;
    }
    if (size && part_.size() >= *size) {
      part_.discard();  // cannot happen with honest peers; start clean
    }
    // A server that ignores Range costs bytes, not correctness: http_fetch drops the first
    // `offset` bytes itself, so the sink always continues where the partial file ends.
    fetch_request request{.url = *url, .offset = part_.size(), .timeouts = options_.timeouts,
                          .tls = tls ? std::move(*tls) : options_.tls,
                          .proxy = std::move(proxy)};
    if (size) {
      request.max_bytes = *size;
    }
    const std::uint64_t start_offset = part_.size();
    auto response = co_await http_fetch(request, [&](std::span<const std::byte> chunk) -> result<void> {
      if (auto written = part_.write(chunk); !written) {
        return written;
      }
      if (options_.progress) {
        options_.progress(part_.size(), size.value_or(0));
      }
      return {};
    });
    if (!response) {
      last_error_ = response.error();
      attempt.outcome = describe_error(response.error()) + " after " +
                        std::to_string(part_.size() - start_offset) + " bytes";
      co_return attempt_result::failed;
    }
    responder_ = response->peer;
    if (response->status == 503) {
      attempt.outcome = "busy (503)";
      // Bounded: a parent cannot park us for long with a huge Retry-After.
      retry_after_ = std::clamp<std::chrono::milliseconds>(
          response->retry_after.value_or(std::chrono::seconds(1)), std::chrono::milliseconds(100),
          std::chrono::milliseconds(10'000));
      co_return attempt_result::busy;
    }
    if (response->status != 200 && response->status != 206) {
      attempt.outcome = "HTTP " + std::to_string(response->status);
      last_error_ = make_error_code(errc::not_found);
      co_return attempt_result::failed;
    }
    if (size && part_.size() != *size) {
      attempt.outcome = "short body: " + std::to_string(part_.size()) + " of " +
                        std::to_string(*size) + " bytes";
      co_return attempt_result::failed;
    }
    attempt.outcome = "ok";
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
  relay_pins pins_;  // relays' TLS certificates, learned from their signed catalogs
  std::optional<trusted_digest> expected_;  // what the partial bytes are part of
  fetch_outcome outcome_;
  std::string responder_;
  boost::system::error_code last_error_;
  bool done_ = false;
  bool all_busy_ = false;                  // the last round's offers all answered 503
  std::chrono::milliseconds retry_after_{1000};  // of the last 503
  std::map<std::string, clock::time_point> not_before_;  // busy parents: not again before
  std::set<std::string> bad_;              // URLs that served wrong bytes: never again this run
  std::set<std::string> offers_seen_;      // distinct offers (by URL) over every round
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

net::awaitable<boost::system::result<fetch_outcome, fetch_failure>> fetch(
    const fetch_options& options) {
  fetch_job job(options);
  co_return co_await job.run();
}

}  // namespace lanrelay::agent
