#pragma once

// The content server's request handler: a parsed request head in, a response plan out. It does no
// socket I/O, so unit tests drive it directly (Beast's handle_request is the model).
//
// The plan is what the server runs: a small response to send now, a file transfer, or an awaited
// response, whose bytes exist only after work of this layer (the mirror's pull-through of a
// missing file, an "update now" sync) that the server awaits without knowing what it is.
//
// The request target is parsed once per request (parse_request_target), by the server, and that
// one parsed_target is carried through accepts_body(), handle() and any awaited response.
//
// Order of decisions for /cache/... and /activeupdate/... (RFC 9110 §13.2.2): target (400/404) →
// method (405) → store or mirror lookup (404; a mirrored file the relay lacks, or a cached item
// it lacks that a parent relay offered: an awaited response that pulls it through, then decides
// again from here on with the pull's outcome) →
// If-Match (412) → If-None-Match (304) → Range with If-Range (206/416/200) → transfer slot (503
// when every slot is taken, or when the client already holds its share, slot_pool.hpp). HEAD,
// 304, 416 and empty items take no slot.
//
// Monitoring and admin endpoints (/, /-/status, /-/metrics, /-/stats, /-/log-level, /-/mirror,
// /-/mirror/sync): target → method (405) → the access policy's decision for the request class
// (admin_access.hpp: monitoring, admin, mirror sync) → the endpoint. No other code decides who
// may do what.
//
// Thread safety: handle() may run on any number of threads at once; the handler's only mutable
// state is its piece list cache, itself thread safe (as are the store, the slot pool and the
// counters). An awaited response runs on whatever executor awaits it and uses the handler, which
// must outlive it.

#include "lanrelay/content/partial_items.hpp"
#include "lanrelay/content/store.hpp"
#include "lanrelay/relay/mirror.hpp"
#include "lanrelay/relay/piece_lists.hpp"
#include "lanrelay/relay/request_target.hpp"
#include "lanrelay/relay/slot_pool.hpp"
#include "lanrelay/relay/stats.hpp"
#include "lanrelay/serving/admin_access.hpp"

#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/address.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace lanrelay::relay {

class monitor;

// Item bytes to send from an open file after `head`. `head` carries Content-Length == length.
struct file_transfer {
  boost::beast::http::response<boost::beast::http::empty_body> head;
  item_file file;
  std::uint64_t offset = 0;
  std::uint64_t length = 0;
  slot_pool::slot slot;  // held until the plan is destroyed: the transfer's end frees it
  std::string item;      // what is sent, for the status (e.g. /cache/installer/agent-x64/14.0.1)
};

// A complete response (its body, if any, is in the message; a HEAD answer has Content-Length set
// and an empty body) or a file transfer: what the server can send as it is.
using small_response = boost::beast::http::response<boost::beast::http::string_body>;
using ready_plan = std::variant<small_response, file_transfer>;

// A response the handler can decide only after awaiting work of its own layer. The server awaits
// `produce()` on the connection's strand and sends what it yields.
struct awaited_response {
  std::function<boost::asio::awaitable<ready_plan>()> produce;
  // The work serves this client only: when the client hangs up meanwhile, the server stops
  // awaiting (which cancels the work's wait) and closes the connection. False: the work runs to
  // its end whatever the client does (an admin action).
  bool abandon_when_client_leaves = false;
};

using response_plan = std::variant<small_response, file_transfer, awaited_response>;

struct handler_settings {
  std::chrono::seconds retry_after{5};  // Retry-After on a 503 when every slot is taken
  // Signs the catalog for /-/catalog.signed; nullptr: the relay has no site key (404). Not owned.
  const class catalog_signer* signer = nullptr;
  // Monitoring and admin endpoints: who may use them, and what they show (nullptr: /, /-/status
  // and /-/metrics answer 404). Not owned.
  access_policy access;
  monitor* monitoring = nullptr;
  // The ActiveUpdate mirrors served at /activeupdate/; nullptr: none (404). Not owned.
  class mirror_service* mirrors = nullptr;
  // Parent relays (discovery.parents): a cached item the store lacks but a parent offered is
  // pulled from it first (parent_chain.hpp); nullptr: 404. Not owned.
  class parent_chain* parents = nullptr;
};

// What the server knows about a request beyond its head.
struct request_context {
  std::optional<boost::asio::ip::address> client;  // the peer; nullopt when unknown
  std::string_view body;  // only for requests accepts_body() allowed; empty otherwise
  // What the pull-through of a missing mirrored file, or the pull of a cached item from a parent
  // relay, came to (set by the handler's own awaited response, or by a test); a file still
  // missing is then a 404 or a 503 with Retry-After (pull->reason), not another pull.
  std::optional<pull_outcome> pull;
  bool secure = false;  // the request came over HTTPS (admin_access.hpp)

  request_origin origin() const { return request_origin{client, secure}; }
};

class request_handler {
 public:
  // All three must outlive the handler.
  request_handler(content_store& store, slot_pool& slots, relay_counters& counters,
                  handler_settings settings) noexcept
      : store_(store),
        slots_(slots),
        counters_(counters),
        settings_(settings),
        retry_after_(settings.retry_after.count()),
        access_(std::make_shared<const access_policy>(settings.access)) {}

  // `target` is parse_request_target(request.target()), parsed once by the caller.
  response_plan handle(const boost::beast::http::request_header<>& request,
                       const parsed_target& target, const request_context& context = {});
  // Parses the target itself: for tests and callers that hold nothing but the head.
  response_plan handle(const boost::beast::http::request_header<>& request,
                       const request_context& context = {});

  // The largest body the request may carry (0: none; the server answers 413 to one). Only admin
  // endpoints that take an argument accept a body.
  static std::size_t accepts_body(const boost::beast::http::request_header<>& request,
                                  const parsed_target& target);
  static constexpr std::size_t max_body_size = 1024;  // the most accepts_body() ever allows

  // Once draining, /-/healthz answers 503 so that monitors see the relay going away.
  void set_draining() noexcept { draining_.store(true, std::memory_order_relaxed); }

  // The Retry-After of later 503 answers (configuration reload); any thread.
  void set_retry_after(std::chrono::seconds retry_after) noexcept {
    retry_after_.store(retry_after.count(), std::memory_order_relaxed);
  }

  // Who may use monitoring and admin endpoints from now on (configuration reload: a new token or
  // read_networks); any thread. Requests being decided keep the policy they started with.
  void set_access_policy(access_policy access) {
    access_.store(std::make_shared<const access_policy>(std::move(access)));
  }

  // A small response for a request the server could not even parse (431, 400, 413...).
  static small_response error_response(boost::beast::http::status status, unsigned version,
                                       std::string_view text);

 private:
  response_plan serve_item(const boost::beast::http::request_header<>& request,
                           const item_key& key, const request_context& context);
  response_plan serve_mirror_file(const boost::beast::http::request_header<>& request,
                                  const parsed_target& target, const request_context& context);
  // Pieces of an item this peer is still downloading (content/partial_items.hpp): a Range within
  // the verified pieces is served like a stored item's; any other request is refused (416 for a
  // Range, 404 without one).
  std::optional<partial_item> find_partial(const item_key& key);
  response_plan serve_partial(const boost::beast::http::request_header<>& request,
                              partial_item partial, const request_context& context);
  response_plan serve_have(const boost::beast::http::request_header<>& request,
                           const sha256_digest& sha256);
  // The awaited responses: pull a missing mirrored file through, then decide again with the
  // outcome; run "update now" for one source (empty: all) and answer with the results. Their
  // arguments are copies: the coroutine frames own them.
  boost::asio::awaitable<ready_plan> pull_then_serve(boost::beast::http::request_header<> request,
                                                     parsed_target target,
                                                     request_context context);
  boost::asio::awaitable<ready_plan> pull_from_parent_then_serve(
      boost::beast::http::request_header<> request, item_key key, request_context context);
  boost::asio::awaitable<ready_plan> sync_then_report(boost::beast::http::request_header<> request,
                                                      std::string source, request_context context);
  // Conditional headers, Range and the transfer slot for an open file (cache item or mirror file).
  // `cache_control`, when not empty, goes on the 200, 206, HEAD and 304 answers.
  response_plan serve_file(const boost::beast::http::request_header<>& request, item_file file,
                           const std::string& etag, std::string_view content_type,
                           std::string_view label, const request_context& context,
                           std::string_view cache_control = {});

  // Monitoring and admin endpoints.
  response_plan serve_monitoring(const boost::beast::http::request_header<>& request,
                                 const parsed_target& target, const request_context& context);
  // Asks the access policy for the request class of a monitoring or admin endpoint: nullopt
  // when granted, else the refusal to send (403, or 401 with WWW-Authenticate).
  std::optional<small_response> authorize(resource_kind resource, bool changing,
                                          const boost::beast::http::request_header<>& request,
                                          const request_context& context) const;

  content_store& store_;
  slot_pool& slots_;
  relay_counters& counters_;
  const handler_settings settings_;  // retry_after: see retry_after_, which reloads change
  std::atomic<std::chrono::seconds::rep> retry_after_;
  std::atomic<std::shared_ptr<const access_policy>> access_;  // settings_.access until reloaded
  std::atomic<bool> draining_{false};
  piece_list_cache pieces_;  // /-/pieces/<sha256> and the catalog's piece list digests
};

}  // namespace lanrelay::relay
